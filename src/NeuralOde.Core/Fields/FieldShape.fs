/// The check that a field maps a state to a value of the same shape, for the models that combine f(t, z) with z (a
/// flow's trace, a regulariser's probes): a field of the wrong width is named with both shapes instead of failing
/// inside libtorch (or, for the kinetic energy, silently summing the wrong thing).
module internal NeuralOde.Core.FieldShape

open System
open TorchSharp
open type TorchSharp.torch.nn

/// The width of an affine layer's input and output (Linear, GalLinear, or the C# facade's wrapper of one), else None.
let private affine (m: Module) =
    match box m with
    | :? Modules.Linear as l -> Some(l.weight.shape[1], l.weight.shape[0])
    | :? GalLinear as g -> Some(g.InFeatures, g.OutFeatures)
    | :? IModuleWrapper as w when (w.Wrapped :? GalLinear) -> let g = w.Wrapped :?> GalLinear in Some(g.InFeatures, g.OutFeatures)
    | _ -> None

/// The widths a Sequential field can be read to take and return: its first layer's input when that layer is affine,
/// and its last layer with parameters' output when that layer is affine (what follows it, an activation, has none).
let widths (field: Module) : int64 option * int64 option =
    match field with
    | :? Modules.Sequential as s ->
        let children = s.children() |> Seq.filter (fun c -> not (c :? Modules.Identity)) |> List.ofSeq
        let first = children |> List.tryHead |> Option.bind affine |> Option.map fst
        let last = children |> List.filter (fun c -> not (Seq.isEmpty (c.parameters()))) |> List.tryLast |> Option.bind affine |> Option.map snd
        first, last
    | _ -> None, None

/// Raises ArgumentException (`argument`) unless f(t, z) = `fz` has the shape of `z`; `user` names the model.
let check (user: string) (argument: string) (t: float) (z: torch.Tensor) (fz: torch.Tensor) =
    if isNull fz || fz.shape <> z.shape then
        let got = if isNull fz then "null" else Internal.TensorOps.shapeText fz
        raise (ArgumentException($"{user} needs a field whose value has the state's shape: at t = {t} the state has shape {Internal.TensorOps.shapeText z}, the field returned {got}. Make the field's output width its input width.", argument))

/// f(t, z), its shape checked (check), a libtorch failure inside f rethrown as ArgumentException (`argument`) naming
/// the state's shape (a layer of another width fails there).
let evaluate (user: string) (argument: string) (f: VectorField) (t: float) (z: torch.Tensor) =
    let fz =
        try f t z
        with :? Runtime.InteropServices.ExternalException as e ->
            raise (ArgumentException($"{user}: the field failed on a state of shape {Internal.TensorOps.shapeText z} at t = {t} ({e.Message.Split('\n')[0]}). Check that its first layer takes the state's width.", argument, e))
    check user argument t z fz
    fz
