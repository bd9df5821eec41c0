/// Recognising the fields the compiled MLP backend runs: a `Sequential` of `Linear` and `GalLinear` layers (or modules
/// wrapping one: IModuleWrapper), each optionally followed by one element-wise activation (tanh, sigmoid, ReLU,
/// softplus with β = 1), `Identity` modules skipped. Anything else (another depth-aware or a data-controlled layer, a
/// custom module, a subclass, a module with forward hooks) is not recognised, with the reason, and the solve evaluates
/// the module on tensors.
module internal NeuralOde.Core.FieldBackends.Mlp.MlpLayers

open System.Reflection
open TorchSharp
open TorchSharp.Modules
open NeuralOde.Core

type Tensor = torch.Tensor

/// An element-wise activation the fused kernels implement.
type Activation =
    | Tanh
    | Sigmoid
    | Relu
    | Softplus

/// One layer: y = act(x Wᵀ + b), with W and b fixed (Linear) or functions of depth (GalLinear: the flat weights
/// [vec(W(s)); b(s)] = α ψ(s)).
type AffineLayer =
    { /// W, out × in (the Linear's own parameter); null for a Galerkin layer.
      Weight: Tensor
      /// b, or null for a Linear without bias (a Galerkin layer always has one).
      Bias: Tensor
      /// The Galerkin layer whose coefficients give W(s) and b(s), or None.
      Galerkin: GalLinear option
      InFeatures: int
      OutFeatures: int
      Activation: Activation option }
    /// Whether the layer has a bias.
    member l.HasBias = l.Galerkin.IsSome || not (isNull l.Bias)
    /// The layer's parameters as the module holds them: W and b, or the Galerkin coefficients α.
    member l.Parameters =
        match l.Galerkin with
        | Some g -> [| g.Coefficients :> Tensor |]
        | None -> if isNull l.Bias then [| l.Weight |] else [| l.Weight; l.Bias |]

/// The hook dictionaries TorchSharp keeps on every module (protected fields of HookableModule); None when this
/// TorchSharp has none by these names, and then no module counts as hook-free.
let private hookFields =
    lazy
        (let rec baseOf (t: System.Type) =
            if isNull t then None
            elif t.IsGenericType && t.GetGenericTypeDefinition().Name.StartsWith "HookableModule" then Some t
            else baseOf t.BaseType
         baseOf typeof<Linear>
         |> Option.bind (fun hookable ->
             let names = [ "pre_hooks"; "post_hooks"; "module_pre_hooks"; "module_post_hooks" ]
             let fields = names |> List.map (fun n -> hookable.GetField(n, BindingFlags.NonPublic ||| BindingFlags.Instance))
             if fields |> List.exists isNull then None else Some(hookable, fields)))

/// True when the module has no forward hook of any kind (or this cannot be told: then false).
let private hookFree (m: torch.nn.Module) =
    match hookFields.Value with
    | None -> false
    | Some(hookable, fields) ->
        hookable.IsAssignableFrom(m.GetType())
        && fields |> List.forall (fun f ->
            match f.GetValue m with
            | :? System.Collections.ICollection as c -> c.Count = 0
            | _ -> false)

let private activationOf (m: torch.nn.Module) =
    match m with
    | :? TorchSharp.Modules.Tanh as t when not t.inplace -> Some(Some Tanh)
    | :? TorchSharp.Modules.Sigmoid -> Some(Some Sigmoid)
    | :? ReLU as r when not r.inplace -> Some(Some Relu)
    | :? TorchSharp.Modules.Softplus as s when s.beta = 1.0 && s.threshold = 20.0 -> Some(Some Softplus)
    | _ -> None

/// The layers of `field` when it is a recognised MLP (see the module's summary), or why it is not.
let recognise (field: torch.nn.Module) : Result<AffineLayer[], string> =
    match field with
    | :? Sequential as s when hookFree s ->
        let children = s.children() |> Seq.filter (fun m -> not (m :? Identity)) |> Seq.toList
        let rec unwrap (m: torch.nn.Module) =
            match box m with
            | :? IModuleWrapper as w when hookFree m -> unwrap w.Wrapped
            | _ -> m
        let rec build (acc: AffineLayer list) (rest: torch.nn.Module list) =
            let withActivation (layer: Activation option -> AffineLayer) tail =
                match tail with
                | (a: torch.nn.Module) :: tail' when hookFree a && (activationOf a).IsSome -> build (layer (activationOf a).Value :: acc) tail'
                | _ -> build (layer None :: acc) tail
            match rest with
            | [] -> if acc.IsEmpty then Error "the Sequential has no layers" else Ok(List.rev acc |> List.toArray)
            | m :: tail ->
                match unwrap m with
                | :? Linear as l when l.GetType() = typeof<Linear> && hookFree l ->
                    withActivation (fun act ->
                        { Weight = l.weight; Bias = (match l.bias with null -> null | b -> b :> Tensor); Galerkin = None
                          InFeatures = int l.weight.shape[1]; OutFeatures = int l.weight.shape[0]; Activation = act }) tail
                | :? GalLinear as g when g.TransformsDepth ->
                    Error "its GalLinear has a trainable dilation or shift of the depth, which the compiled backend does not evaluate"
                | :? GalLinear as g when g.GetType() = typeof<GalLinear> && hookFree g ->
                    withActivation (fun act ->
                        { Weight = null; Bias = null; Galerkin = Some g; InFeatures = int g.InFeatures; OutFeatures = int g.OutFeatures
                          Activation = act }) tail
                | other -> Error $"its layer {other.GetType().Name} is not a Linear or GalLinear (each followed by at most one tanh, sigmoid, ReLU or softplus) without hooks"
        match build [] children with
        | Ok layers when not (Array.pairwise layers |> Array.forall (fun (a, b) -> a.OutFeatures = b.InFeatures)) ->
            Error "its layers' widths do not chain"
        | Ok layers when layers[0].InFeatures <> layers[layers.Length - 1].OutFeatures ->
            Error $"it maps {layers[0].InFeatures} features to {layers[layers.Length - 1].OutFeatures}, not to as many"
        | result -> result
    | :? Sequential -> Error "the Sequential has forward hooks"
    | _ -> Error $"the field is a {field.GetType().Name}, not a Sequential of Linear/GalLinear layers and activations"

/// The layers' parameters in the order the compiled system takes them: W₁, b₁, W₂, b₂, … (biases that exist; a
/// Galerkin layer's coefficients α in place of its W and b).
let parameters (layers: AffineLayer[]) = layers |> Array.collect (fun l -> l.Parameters)
