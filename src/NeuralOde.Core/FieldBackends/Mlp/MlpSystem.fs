/// A compiled field on host buffers over chunks of rows (Problem/FieldBackend.fs's ICompiledSystem and ITapedSystem):
/// the state is the batch reshaped to rows × features, each chunk of rows is evaluated on a workspace of its own,
/// chunks side by side (FieldBackends/IntraOpThreads.fs), and the chunks' shares of the parameters' gradients are
/// summed. The rows are independent in f and its products; only the integrator's error norm couples them, and it sees
/// the whole state. The plain MLP's rows are here; the flow's augmented field (TraceSystem.fs) has rows of its own.
module internal NeuralOde.Core.FieldBackends.Mlp.MlpSystem

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.FieldBackends
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

/// One chunk of a system's rows, evaluated on its workspace.
type IRows =
    /// f at the chunk's rows of y into the same rows of dy, keeping the evaluation under `slot`.
    abstract Forward: slot: int * t: float * y: Buffer * dy: Buffer -> unit
    /// The adjoint system's derivative at the chunk's rows of [x; a] (into the same rows of dy's x and a parts), and
    /// −(the chunk's share of the parameters' gradients) into `gradients` from `offset`.
    abstract Adjoint: t: float * y: Buffer * dy: Buffer * gradients: Buffer * offset: int -> unit
    /// (∂f/∂y)ᵀ g at the slot's evaluation, for the chunk's rows of g into the same rows of gy (the parameters' share
    /// accumulated when `accumulate`).
    abstract Products: slot: int * t: float * g: Buffer * gy: Buffer * accumulate: bool -> unit

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

/// An MLP's rows [start, start + count) of a state of n entries.
type FieldRows(kernels: IKernels, ws: Workspace, layers: AffineLayer[], tracked: bool[], start: int, count: int, n: int) =
    let features = layers[0].InFeatures
    let at, entries = start * features, count * features
    let sizes = parameterSizes layers
    let evaluate slot t (y: Buffer) (dy: Buffer) =
        copy y at (ws.Input slot) 0 entries
        ws.AtDepth t
        evaluateSlot kernels ws layers slot
        copy (ws.K slot) 0 dy at entries
    let products slot t (g: Buffer) accumulate = (ws.AtDepth t; vectorJacobianProduct kernels ws layers slot t g accumulate)
    interface IRows with
        member _.Forward(slot, t, y, dy) = evaluate slot t y dy
        member _.Adjoint(t, y, dy, gradients, offset) =
            evaluate 0 t y dy
            adjointRows ws layers tracked sizes n at entries (products 0 t) y dy gradients offset
        member _.Products(slot, t, g, gy, accumulate) =
            let b = ws.Backward
            copy g at b.KBar[0] 0 entries
            products slot t b.KBar[0] accumulate
            copy b.UBar 0 gy at entries

/// The system over its chunks' rows (n state entries), on workspaces rented for one solve and given back by Dispose.
type ChunkedSystem(rows: IRows[], workspaces: Workspace[], layers: AffineLayer[], n: int, giveBack: unit -> unit) =
    let ps = parameters layers
    let tracked = ps |> Array.map (fun p -> p.requires_grad)
    let p = parameterSizes layers |> Array.sum
    let dtype = workspaces[0].Input(0).Tensor.dtype
    let shares =
        if rows.Length = 1 then [||]
        else workspaces |> Array.map (fun ws -> ws.Scratch($"gradients/{p}", fun () -> new ShareBuffer(dtype, max 1 p)).Buffer)
    // Grad mode is per thread: a chunk's worker thread has it on, and the buffers' in-place updates are not to be recorded.
    let inParallel (work: int -> unit) = IntraOpThreads.inParallel rows.Length (fun c -> (use _ = torch.no_grad() in work c))
    let mutable disposed = false
    let generations = workspaces |> Array.map (fun ws -> ws.Generation)
    interface ITapedSystem with
        member _.Length = n
        member _.Parameters = ps
        member _.ParameterLength = p
        member _.Evaluate(t, y, dy) = inParallel (fun c -> rows[c].Forward(0, t, y, dy))
        member _.EvaluateAdjoint(t, y, dy) =
            if rows.Length = 1 then rows[0].Adjoint(t, y, dy, dy, 2 * n)
            else
                inParallel (fun c -> rows[c].Adjoint(t, y, dy, shares[c], 0))
                copy shares[0] 0 dy (2 * n) p
                for c in 1 .. shares.Length - 1 do
                    match dy.Data, shares[c].Data with
                    | (:? (float32[]) as d), (:? (float32[]) as s) -> for i in 0 .. p - 1 do d[2 * n + i] <- d[2 * n + i] + s[i]
                    | d, s ->
                        let d, s = d :?> float[], s :?> float[]
                        for i in 0 .. p - 1 do d[2 * n + i] <- d[2 * n + i] + s[i]
        member _.EvaluateTaped(slot, t, y, dy) =
            for ws in workspaces do (if ws.Slots <= slot then ws.EnsureSlots(slot + 1))
            inParallel (fun c -> rows[c].Forward(slot, t, y, dy))
        member _.ProductsAt(slot, t, g, gy) =
            let accumulate = Array.exists id tracked
            inParallel (fun c -> rows[c].Products(slot, t, g, gy, accumulate))
        member _.ClearGradients() = for ws in workspaces do clearGradients ws
        member _.Valid = Array.forall2 (fun (ws: Workspace) g -> ws.Generation = g) workspaces generations
        member _.ParameterGradients() =
            let all = workspaces |> Array.map (fun ws -> parameterGradients ws layers)
            for c in 1 .. all.Length - 1 do
                Array.iteri2 (fun i (total: Tensor) (part: Tensor) -> (Internal.TensorOps.addScaledInPlace total part 1.0 |> ignore; part.Dispose())) all[0] all[c]
            Array.map2 (fun (g: Tensor) tracked -> if tracked then g else (g.Dispose(); null)) all[0] tracked
    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                giveBack ()

/// A chunk's share of the parameters' gradients, kept with its workspace.
and ShareBuffer(dtype: torch.ScalarType, p: int) =
    let b = buffer dtype 1 p
    member _.Buffer = b
    interface IDisposable with
        member _.Dispose() = b.Tensor.Dispose()

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
