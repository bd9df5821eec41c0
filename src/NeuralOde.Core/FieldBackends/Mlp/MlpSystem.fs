/// The compiled MLP's rows of a state (FieldBackends/ChunkedSystem.fs): the batch reshaped to rows × features, each
/// chunk of rows evaluated on a workspace of its own. The plain MLP's rows are here; the flow's augmented field
/// (TraceSystem.fs) has rows of its own.
module internal NeuralOde.Core.FieldBackends.Mlp.MlpSystem

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.FieldBackends
open NeuralOde.Core.FieldBackends.ChunkedSystem
open NeuralOde.Core.FieldBackends.Mlp.MlpLayers
open NeuralOde.Core.FieldBackends.Mlp.Kernels
open NeuralOde.Core.FieldBackends.Mlp.Workspace

/// dst[dstOffset + i] = −src[srcOffset + i] for i < count (a float64 source may fill a float32 target).
let negatedInto (src: Array) (srcOffset: int) (dst: Array) (dstOffset: int) (count: int) =
    match src, dst with
    | (:? (float32[]) as s), (:? (float32[]) as d) -> for i in 0 .. count - 1 do d[dstOffset + i] <- -s[srcOffset + i]
    | (:? (float[]) as s), (:? (float[]) as d) -> for i in 0 .. count - 1 do d[dstOffset + i] <- -s[srcOffset + i]
    | (:? (float[]) as s), (:? (float32[]) as d) -> for i in 0 .. count - 1 do d[dstOffset + i] <- float32 -s[srcOffset + i]
    | _ -> invalidOp $"No negated copy from {src.GetType().Name} to {dst.GetType().Name}."

/// The parameters' sizes (entries), in the order of `parameters`.
let parameterSizes (layers: AffineLayer[]) = parameters layers |> Array.map (fun p -> int (p.numel()))

/// Writes −(each parameter's accumulated gradient) into dy from `offset` on, in the order of `parameters` (zeros for
/// those not tracked).
let negatedGradientsInto (ws: Workspace) (layers: AffineLayer[]) (tracked: bool[]) (sizes: int[]) (dy: Buffer) (offset: int) =
    let b = ws.Backward
    let mutable offset = offset
    let mutable p = 0
    let next (fill: int -> unit) =
        if tracked[p] then fill offset else Array.Clear(dy.Data, offset, sizes[p])
        offset <- offset + sizes[p]
        p <- p + 1
    for l in 0 .. layers.Length - 1 do
        let layer = layers[l]
        match b.Coefficients[l] with
        | Some dAlpha -> next (fun at -> negatedInto dAlpha 0 dy.Data at dAlpha.Length)
        | None ->
            let gw = b.GradW[l]
            let inF, outF = layer.InFeatures, layer.OutFeatures
            next (fun at ->
                if ws.Copies[l].GradTransposed then
                    for o in 0 .. outF - 1 do
                        for k in 0 .. inF - 1 do dy[at + o * inF + k] <- -gw[k * outF + o]
                else negatedInto gw.Data 0 dy.Data at (inF * outF))
            match b.GradB[l] with
            | Some gb -> next (fun at -> negatedInto gb.Data 0 dy.Data at outF)
            | None -> ()

/// The adjoint part of a chunk's evaluation, after its forward part at slot 0 (`entries` state entries from `at`):
/// the rows of a (from n + at in y) as the output's cotangent, `products` through the evaluation (into UBar and, when
/// parameters are tracked, their accumulators, cleared first), −UBar into the rows of a's derivative and −(the
/// parameters' gradients) into `gradients` from `offset`.
let adjointRows (ws: Workspace) (layers: AffineLayer[]) (tracked: bool[]) (sizes: int[]) (n: int) (at: int) (entries: int)
                (products: Buffer -> bool -> unit) (y: Buffer) (dy: Buffer) (gradients: Buffer) (offset: int) =
    let b = ws.Backward
    let accumulate = Array.exists id tracked
    copy y (n + at) b.KBar[0] 0 entries
    if accumulate then clearGradients ws
    products b.KBar[0] accumulate
    negatedInto b.UBar.Data 0 dy.Data (n + at) entries
    negatedGradientsInto ws layers tracked sizes gradients offset

/// A chunk's rows on its workspace: what every such chunk does with it (slots, gradient accumulators, its share of the
/// parameters' gradients, whether it still holds it); the rows' evaluations are the subclass's.
[<AbstractClass>]
type WorkspaceRows(ws: Workspace, layers: AffineLayer[]) =
    let generation = ws.Generation
    let p = parameterSizes layers |> Array.sum
    abstract Forward: slot: int * t: float * y: Buffer * dy: Buffer -> unit
    abstract Adjoint: t: float * y: Buffer * dy: Buffer * gradients: Buffer * offset: int -> unit
    abstract Products: slot: int * t: float * g: Buffer * gy: Buffer * accumulate: bool -> unit
    default _.Products(_, _, _, _, _) = invalidOp "These rows keep no tape: they are differentiated by the adjoints."
    interface IRows with
        member r.Forward(slot, t, y, dy) = r.Forward(slot, t, y, dy)
        member r.Adjoint(t, y, dy, gradients, offset) = r.Adjoint(t, y, dy, gradients, offset)
        member r.Products(slot, t, g, gy, accumulate) = r.Products(slot, t, g, gy, accumulate)
        member _.EnsureSlots count = if ws.Slots < count then ws.EnsureSlots count
        member _.ClearGradients() = clearGradients ws
        member _.ParameterGradients() = parameterGradients ws layers
        member _.Share = ws.Scratch($"gradients/{p}", fun () -> new OwnedBuffer(ws.Input(0).Tensor.dtype, max 1 p)).Buffer
        member _.Held = ws.Generation = generation

/// An MLP's rows [start, start + count) of a state of n entries.
type FieldRows(kernels: IKernels, ws: Workspace, layers: AffineLayer[], tracked: bool[], start: int, count: int, n: int) =
    inherit WorkspaceRows(ws, layers)
    let features = layers[0].InFeatures
    let at, entries = start * features, count * features
    let sizes = parameterSizes layers
    let evaluate slot t (y: Buffer) (dy: Buffer) =
        copy y at (ws.Input slot) 0 entries
        ws.AtDepth t
        evaluateSlot kernels ws layers slot
        copy (ws.K slot) 0 dy at entries
    let products slot t (g: Buffer) accumulate = (ws.AtDepth t; vectorJacobianProduct kernels ws layers slot t g accumulate)
    override _.Forward(slot, t, y, dy) = evaluate slot t y dy
    override _.Adjoint(t, y, dy, gradients, offset) =
        evaluate 0 t y dy
        adjointRows ws layers tracked sizes n at entries (products 0 t) y dy gradients offset
    override _.Products(slot, t, g, gy, accumulate) =
        let b = ws.Backward
        copy g at b.KBar[0] 0 entries
        products slot t b.KBar[0] accumulate
        copy b.UBar 0 gy at entries

/// The fewest rows a chunk gets: below this a second thread costs more than it saves (128 was slower at batch 256:
/// 13–21 ms per W1 iteration against 9.5–11).
let chunkRows = 256

/// Fields with a layer wider than this are not split: libtorch shares their products between its threads well itself
/// (at width 1024 the split gained nothing: 3.1–3.6 s per W1 iteration either way).
let splitWidth = 512

/// The chunks (start, count) of `rows` rows for `threads` threads.
let chunks (layers: AffineLayer[]) (rows: int) (threads: int) =
    let widest = layers |> Array.map (fun l -> max l.InFeatures l.OutFeatures) |> Array.max
    let count = if widest > splitWidth then 1 else max 1 (min threads (rows / chunkRows))
    Array.init count (fun c -> let r0 = rows * c / count in r0, rows * (c + 1) / count - r0)
