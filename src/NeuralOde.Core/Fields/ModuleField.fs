/// A module as a vector field f(s, z): before each evaluation, every depth-aware module inside it (itself included)
/// is told the depth, and every data-controlled one the data. Autonomous modules are evaluated unchanged.
///
/// The core's modules override RegisterComponents with nothing and register their components by name in their
/// constructors: TorchSharp's default registers every Module or Tensor field again under its field name when a parent
/// registers the module — a block's field a second time (a C# NeuralOdeBlock's state_dict held every tensor twice, as
/// "vector_field.*" and "vectorField.*"), or a stale per-evaluation tensor (a Galerkin layer's last weights,
/// DataControl's data) as a buffer.
module NeuralOde.Core.ModuleField

open System.Collections.Generic
open TorchSharp
open type TorchSharp.torch.nn

/// The module and its descendants, each once, in the order TorchSharp lists them.
let tree (m: Module) : Module list =
    let seen = HashSet<Module>(HashIdentity.Reference)
    [ for child in Seq.append [ m ] (m.modules()) do
        if seen.Add child then yield child ]

/// The depth-aware modules inside `m` (itself included).
let depthAware (m: Module) : IDepthAware list =
    tree m |> List.choose (fun c -> match box c with :? IDepthAware as d -> Some d | _ -> None)

/// The data-controlled modules inside `m` (itself included).
let dataControlled (m: Module) : IDataControlled list =
    tree m |> List.choose (fun c -> match box c with :? IDataControlled as d -> Some d | _ -> None)

/// f(s, z) = m(z) with every depth-aware module inside m told s and, when `data` is not null, every data-controlled
/// one told `data`, before each evaluation (so an adjoint's backward solve, which evaluates f at other depths after
/// other forwards may have run, still sees this solve's depth and data). The modules hold the depth and data while
/// an evaluation runs, so one module must not be evaluated by two threads at once (as in torchdyn).
let create (m: Module<torch.Tensor, torch.Tensor>) (data: torch.Tensor) : VectorField =
    if isNull m then raise (System.ArgumentNullException("vectorField"))
    let depth = depthAware m |> Array.ofList
    let controlled = dataControlled m |> Array.ofList
    if controlled.Length > 0 && isNull data then
        raise (System.ArgumentException("The vector field holds a data-controlled module (e.g. DataControl) but no data was given: solve it through a block, which passes its input, or give the data.", "data"))
    fun s z ->
        // One evaluation of m at a time: the depth and data are set on m's modules for the evaluation, so another
        // thread's evaluation in between would read this one's (two threads on one block gave wrong values).
        lock m (fun () ->
            for d in depth do d.SetDepth s
            for c in controlled do c.SetData data
            // The data is handed for this evaluation only: a module keeps no reference to it afterwards (a stale x,
            // disposed later or from another batch, could otherwise be read by a direct forward).
            try m.forward z
            finally for c in controlled do c.SetData null)

/// f(t, z) = m(z) with one depth per sample, t of shape [N] (adaptive depth, per-sample spans): every depth-aware
/// module inside m must take per-sample depths (ISampleDepthAware) and is told t, every data-controlled one `data`,
/// for the evaluation only.
let createPerSample (m: Module<torch.Tensor, torch.Tensor>) (data: torch.Tensor) : torch.Tensor -> torch.Tensor -> torch.Tensor =
    if isNull m then raise (System.ArgumentNullException("vectorField"))
    let sampleAware =
        depthAware m |> List.map (fun d ->
            match d with
            | :? ISampleDepthAware as s -> s
            | other ->
                raise (System.ArgumentException($"The field is evaluated with one depth per sample, but it holds {other.GetType().Name}, which takes one depth for the batch. Use DepthCat (or an ISampleDepthAware module) for depth dependence.", "vectorField")))
        |> Array.ofList
    let controlled = dataControlled m |> Array.ofList
    fun depths z ->
        lock m (fun () ->
            for d in sampleAware do d.SetSampleDepth depths
            for c in controlled do c.SetData data
            try m.forward z
            finally
                for d in sampleAware do d.SetSampleDepth null
                for c in controlled do c.SetData null)
