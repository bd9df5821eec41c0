/// A continuous normalizing flow's augmented field compiled on host buffers (the Cnf's Encode on the compiled MLP):
///   d/dt [z; Δ] = [f(z); Σ_k ε_kᵀ (∂f/∂z) ε_k]
/// with the probes ε_k of Hutchinson's estimate (one) or the unit vectors (the exact trace, d of them). The trace is
/// forward-mode: each probe's tangent is pushed through the layers (ż_l = ḣ_{l−1} W_lᵀ, ḣ_l = act′ ⊙ ż_l) beside the
/// evaluation, and εᵀ J ε is the row sum of ε ⊙ ḣ_L. The adjoint system's products differentiate that computation in
/// reverse, with the activation's second derivative:
///   g_p = g_h ⊙ act′ + Σ_k g_ḣk ⊙ act″ ⊙ ż_k,   g_żk = g_ḣk ⊙ act′,
///   g_h⁻ = g_p W,   g_ḣk⁻ = g_żk W,   dW += g_pᵀ h⁻ + Σ_k g_żkᵀ ḣk⁻,   db += Σ_rows g_p,
/// seeded with g_h = a_z at the output and g_ḣk = a_Δ ε_k (a_Δ per row: the trace's cotangent).
/// The state is the Cnf's [N, d + 1] rows (z_r, Δ_r), flattened.
module internal NeuralOde.Core.FieldBackends.Mlp.TraceSystem

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.FieldBackends.Mlp.MlpLayers
open NeuralOde.Core.FieldBackends.Mlp.Kernels
open NeuralOde.Core.FieldBackends.Mlp.Workspace
open NeuralOde.Core.FieldBackends
open NeuralOde.Core.FieldBackends.Mlp.MlpSystem

/// The buffers of the trace for `probes` probes: the probes, each layer's act′ and act″, each probe's tangents before
/// and after each layer's activation, and their cotangents.
type TraceBuffers(dtype: torch.ScalarType, rows: int, layers: AffineLayer[], probes: int) =
    let make r c = (use _ = torch.no_grad() in buffer dtype r c)
    let d = layers[0].InFeatures
    let width (l: int) = layers[l].OutFeatures
    let activated (l: int) = layers[l].Activation.IsSome
    let epsilon = Array.init probes (fun _ -> make rows d)
    let d1 = Array.init layers.Length (fun l -> if activated l then Some(make rows (width l)) else None)
    let d2 = Array.init layers.Length (fun l -> if activated l then Some(make rows (width l)) else None)
    let before = Array.init probes (fun _ -> Array.init layers.Length (fun l -> make rows (width l)))
    // After the activation: its own buffer where there is one, else the same as before it.
    let after = before |> Array.map (Array.mapi (fun l b -> if activated l then make rows (width l) else b))
    let cotangents = Array.init probes (fun _ -> Array.init layers.Length (fun l -> make rows (width l)))
    let all =
        [| yield! epsilon
           for b in Array.append d1 d2 do match b with Some b -> yield b | None -> ()
           for k in 0 .. probes - 1 do
               yield! before[k]
               for l in 0 .. layers.Length - 1 do if activated l then yield after[k][l]
               yield! cotangents[k] |]
    do for b in all do b.Tensor.DetachFromDisposeScope() |> ignore
    member _.Probes = probes
    member _.Epsilon = epsilon
    member _.D1 = d1
    member _.D2 = d2
    /// Probe k's tangent before layer l's activation (ż) and after it (ḣ).
    member _.Before = before
    member _.After = after
    /// Probe k's cotangent of ḣ at layer l's output.
    member _.Cotangents = cotangents
    interface IDisposable with
        member _.Dispose() = for b in all do b.Tensor.Dispose()

/// A layer as its linear map only (no bias, no activation), for the tangents and the hand-applied derivatives.
let private linear (layer: AffineLayer) = { layer with Activation = None; Bias = null; Galerkin = None }

/// The augmented field's evaluation and products on a workspace's slot 0.
type private Trace(kernels: IKernels, ws: Workspace, layers: AffineLayer[], tb: TraceBuffers) =
    let depth = layers.Length
    let maps = layers |> Array.map linear
    let unbiased = ws.Copies |> Array.map (fun c -> { c with Bias = None })
    let activation (l: int) = layers[l].Activation

    /// f(z) into the workspace's slot 0 (z in its input), act′ and act″, the tangents, and the trace per row into
    /// target[offset ..).
    member _.Evaluate(t: float, target: Array, offset: int) =
        ws.AtDepth t
        evaluateSlot kernels ws layers 0
        for l in 0 .. depth - 1 do
            match activation l, tb.D1[l], tb.D2[l] with
            | Some act, Some d1, Some d2 -> TraceKernels.derivatives act (ws.LayerOutput 0 l) d1 d2
            | _ -> ()
        for k in 0 .. tb.Probes - 1 do
            let mutable tangent = tb.Epsilon[k]
            for l in 0 .. depth - 1 do
                kernels.Affine(tangent, maps[l], unbiased[l], tb.Before[k][l])
                match tb.D1[l] with
                | Some d1 -> TraceKernels.multiply d1 (tb.Before[k][l]) (tb.After[k][l])
                | None -> ()
                tangent <- tb.After[k][l]
            TraceKernels.rowDots (tb.Epsilon[k]) tangent target offset (k > 0)

    /// After Evaluate at t: with g_h = the output's cotangent (overwritten) and the trace's cotangent per row in
    /// w[offset ..), the state's cotangent into the backward buffers' UBar and (with `accumulate`) the parameters'
    /// gradients into their accumulators.
    member _.Products(t: float, g: Buffer, w: Array, offset: int, accumulate: bool) =
        let b = ws.Backward
        for k in 0 .. tb.Probes - 1 do TraceKernels.scaleRows w offset (tb.Epsilon[k]) (tb.Cotangents[k][depth - 1])
        let mutable g = g
        for l in depth - 1 .. -1 .. 0 do
            let gIn = if l = 0 then b.UBar else b.G[l - 1]
            match tb.D1[l], tb.D2[l] with
            | Some d1, Some d2 ->
                TraceKernels.multiply g d1 g
                for k in 0 .. tb.Probes - 1 do
                    TraceKernels.addProduct g (tb.Cotangents[k][l]) d2 (tb.Before[k][l])
                    TraceKernels.multiply (tb.Cotangents[k][l]) d1 (tb.Cotangents[k][l])
            | _ -> ()
            kernels.AffineBackward(g, maps[l], ws.Copies[l], ws.LayerOutput 0 l, ws.LayerInput 0 l, b.GradW[l], b.GradB[l], Some gIn, accumulate)
            for k in 0 .. tb.Probes - 1 do
                let input = if l = 0 then tb.Epsilon[k] else tb.After[k][l - 1]
                let tangentIn = if l = 0 then None else Some(tb.Cotangents[k][l - 1])
                if accumulate || tangentIn.IsSome then
                    kernels.AffineBackward(tb.Cotangents[k][l], maps[l], unbiased[l], tb.Before[k][l], input, b.GradW[l], None, tangentIn, accumulate)
            if accumulate then ws.FoldGalerkinGradient(l, t)
            g <- gIn

/// A chunk's probes: its rows of Hutchinson's ε for the whole batch (`all`, drawn as Trace.noise draws it), or the d
/// unit vectors.
let private fillProbes (tb: TraceBuffers) (trace: TraceEstimator) (all: Tensor) (start: int) (count: int) (d: int) =
    match trace with
    | Hutchinson _ ->
        use rows = all.narrow(0L, int64 start, int64 count)
        tb.Epsilon[0].Tensor.copy_(rows) |> ignore
    | Exact ->
        for k in 0 .. d - 1 do
            let e = tb.Epsilon[k]
            Array.Clear e.Data
            for r in 0 .. count - 1 do e[r * d + k] <- 1.0

/// A chunk of the flow's rows [start, start + count) of the [N, d + 1] state (n = N·(d + 1) entries): the forward
/// system (z_r, Δ_r) ↦ (f(z_r), tr_r) and the adjoint system's rows of [x; a; μ] ↦ [f; tr; −(∂/∂z)ᵀ; 0; −(∂/∂θ)ᵀ].
type private TraceRows(kernels: IKernels, ws: Workspace, layers: AffineLayer[], tb: TraceBuffers, tracked: bool[], start: int, count: int, n: int) =
    inherit WorkspaceRows(ws, layers)
    let d = layers[0].InFeatures
    let stride = d + 1
    let evaluator = Trace(kernels, ws, layers, tb)
    let sizes = parameterSizes layers
    let dtype = ws.Input(0).Tensor.dtype
    // The chunk's traces and the trace's cotangents a_Δ, one per row.
    let traces = buffer dtype 1 count
    let traceCotangents = buffer dtype 1 count
    let gather (y: Buffer) (offset: int) (target: Buffer) =
        for r in 0 .. count - 1 do copy y (offset + (start + r) * stride) target (r * d) d
    let evaluate t (y: Buffer) (dy: Buffer) =
        gather y 0 (ws.Input 0)
        evaluator.Evaluate(t, traces.Data, 0)
        let k = ws.K 0
        for r in 0 .. count - 1 do
            let at = (start + r) * stride
            copy k (r * d) dy at d
            dy[at + d] <- traces[r]
    override _.Forward(_, t, y, dy) = evaluate t y dy
    override _.Adjoint(t, y, dy, gradients, offset) =
        evaluate t y dy
        let b = ws.Backward
        let accumulate = Array.exists id tracked
        gather y n b.KBar[0]
        for r in 0 .. count - 1 do traceCotangents[r] <- y[n + (start + r) * stride + d]
        if accumulate then clearGradients ws
        evaluator.Products(t, b.KBar[0], traceCotangents.Data, 0, accumulate)
        // −ū into a_z's rows; a_Δ is constant (f does not read Δ).
        for r in 0 .. count - 1 do
            let at = n + (start + r) * stride
            negatedInto b.UBar.Data (r * d) dy.Data at d
            dy[at + d] <- 0.0
        negatedGradientsInto ws layers tracked sizes gradients offset
    interface IDisposable with
        member _.Dispose() =
            traces.Tensor.Dispose()
            traceCotangents.Tensor.Dispose()

/// The flow's rows over chunks (ChunkedSystem.RowChunkSystem) on rented workspaces (given back by `giveBack`), the probes
/// for `rows` rows drawn once from `seed` (Hutchinson) or the unit vectors (exact).
let system (layers: AffineLayer[]) (trace: TraceEstimator) (seed: uint64) (rows: int) (dtype: torch.ScalarType)
           (workspaces: Workspace[]) (chunks: (int * int)[]) (giveBack: unit -> unit) : ChunkedSystem.RowChunkSystem =
    let d = layers[0].InFeatures
    let kernels = kernelsFor dtype
    let tracked = parameters layers |> Array.map (fun p -> p.requires_grad)
    let probes = match trace with Hutchinson _ -> 1 | Exact -> d
    let n = rows * (d + 1)
    use all = match trace with Hutchinson kind -> Trace.noise kind seed [| int64 rows; int64 d |] dtype torch.CPU | Exact -> null
    let evaluators =
        Array.map2 (fun (ws: Workspace) (start, count) ->
            let tb = ws.Scratch($"trace/{probes}", fun () -> new TraceBuffers(dtype, count, layers, probes))
            fillProbes tb trace all start count d
            new TraceRows(kernels, ws, layers, tb, tracked, start, count, n)) workspaces chunks
    let release () =
        for e in evaluators do (e :> IDisposable).Dispose()
        giveBack ()
    new ChunkedSystem.RowChunkSystem(evaluators |> Array.map (fun e -> e :> ChunkedSystem.IRows), parameters layers, n, release)
