/// The backsolve adjoint (Sensitivity.Adjoint; Sensitivity/AdjointFunction.fs) of a recognised MLP field with no
/// tensor per step: the forward solve and each backward solve run on flat buffers (BufferIntegrator), the field and
/// its vector–Jacobian products by the fused kernels. The forward pass keeps the states at the checkpoint grid (output
/// times and the extra checkpoints) as host arrays; the backward pass integrates [x; a; μ] from each grid point back
/// to the one before, restarting x from its checkpoint:
///   dx/dt = f(t, x),   da/dt = −aᵀ ∂f/∂x,   dμ/dt = −aᵀ ∂f/∂θ,   a(t_N) = ∂L/∂x(t_N), μ(t_N) = 0,
/// and returns dL/dx0 = a(t_0), dL/dθ = μ(t_0) — what the generic adjoint computes, step for step (the same steps,
/// error norm, seminorm and control). Only z at the last time is an output, so there are no jumps at earlier times.
module internal NeuralOde.Core.Fused.FusedAdjoint

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Fused.MlpField
open NeuralOde.Core.Fused.Kernels
open NeuralOde.Core.Fused.Workspace
open NeuralOde.Core.Fused.BufferIntegrator

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
    // Writes −(parameter p's gradient) at the offset by `fill`, or zeros when p is not tracked.
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

/// One chunk of a system's rows (rows [start, start + count) of the batch), evaluated on a workspace of its own.
type IRowEvaluator =
    /// The forward system's derivative at the chunk's rows of y, into the same rows of dy.
    abstract Forward: t: float * y: Buffer * dy: Buffer -> unit
    /// The adjoint system's derivative at the chunk's rows (its state and adjoint entries of dy), and −(the chunk's
    /// share of the parameters' gradients) into `gradients` from `offset`.
    abstract Adjoint: t: float * y: Buffer * dy: Buffer * gradients: Buffer * offset: int -> unit

/// The adjoint part of a chunk's evaluation, after its forward part (the workspace's slot 0 holds the evaluation at
/// the chunk's rows, `entries` state entries from `at`): the rows of a (from n + at in y) as the output's cotangent,
/// `products` through the saved evaluation (into UBar and, when parameters are tracked, their accumulators, cleared
/// first), −UBar into the rows of a's derivative and −(the parameters' gradients) into `gradients` from `offset`.
let adjointRows (ws: Workspace) (layers: AffineLayer[]) (tracked: bool[]) (sizes: int[]) (n: int) (at: int) (entries: int)
                (products: Buffer -> bool -> unit) (y: Buffer) (dy: Buffer) (gradients: Buffer) (offset: int) =
    let b = ws.Backward
    let accumulate = Array.exists id tracked
    copy y (n + at) b.KBar[0] 0 entries
    if accumulate then clearGradients ws
    products b.KBar[0] accumulate
    negatedInto b.UBar.Data 0 dy.Data (n + at) entries
    negatedGradientsInto ws layers tracked sizes gradients offset

/// An MLP field's rows: the forward system f(t, x) on x (n entries, `features` per row) and the adjoint system on
/// [x; a; μ]: (f(t, x), −aᵀ ∂f/∂x, −aᵀ ∂f/∂θ); parameters that do not require grad get zero (as
/// AdjointSystem.derivatives gives them).
type FieldRows(kernels: IKernels, ws: Workspace, layers: AffineLayer[], tracked: bool[], start: int, count: int, n: int) =
    let features = layers[0].InFeatures
    let at, entries = start * features, count * features
    let sizes = parameterSizes layers
    let evaluate t (y: Buffer) (dy: Buffer) =
        copy y at (ws.Input 0) 0 entries
        ws.AtDepth t
        evaluateSlot kernels ws layers 0
        copy (ws.K 0) 0 dy at entries
    interface IRowEvaluator with
        member _.Forward(t, y, dy) = evaluate t y dy
        member _.Adjoint(t, y, dy, gradients, offset) =
            evaluate t y dy
            let products g accumulate = vectorJacobianProduct kernels ws layers 0 t g accumulate
            adjointRows ws layers tracked sizes n at entries products y dy gradients offset

/// The forward system (n entries) and its adjoint system [y; a; μ] over chunks of rows evaluated side by side, one
/// thread each (FusedRungeKutta.inParallel: each chunk's thread runs libtorch single-threaded); the chunks' shares of
/// the parameters' gradients are summed into μ's derivative. The rows of the state are independent in f and its
/// products; only the error norm of the integrator couples them, and it sees the whole state.
let chunkedSystems (chunks: IRowEvaluator[]) (workspaces: Workspace[]) (layers: AffineLayer[]) (n: int) : IBufferSystem * IBufferSystem =
    let p = parameterSizes layers |> Array.sum
    let dtype = workspaces[0].Input(0).Tensor.dtype
    let shares = if chunks.Length = 1 then [||] else workspaces |> Array.map (fun ws -> ws.Scratch($"gradients/{p}", fun () -> new ScratchBuffer(dtype, 1, max 1 p)).Buffer)
    // Grad mode is per thread: a chunk's worker thread has it on, and the buffers' in-place updates are not to be recorded.
    let inParallel (work: int -> unit) = FusedRungeKutta.inParallel chunks.Length (fun c -> (use _ = torch.no_grad() in work c))
    let forward =
        { new IBufferSystem with
            member _.Length = n
            member _.Evaluate(t, y, dy) = inParallel (fun c -> chunks[c].Forward(t, y, dy)) }
    let adjoint =
        { new IBufferSystem with
            member _.Length = 2 * n + p
            member _.Evaluate(t, y, dy) =
                if chunks.Length = 1 then chunks[0].Adjoint(t, y, dy, dy, 2 * n)
                else
                    inParallel (fun c -> chunks[c].Adjoint(t, y, dy, shares[c], 0))
                    match dy.Data with
                    | :? (float32[]) as d ->
                        Array.Copy(shares[0].Data, 0, d, 2 * n, p)
                        for c in 1 .. shares.Length - 1 do
                            let s = shares[c].Data :?> float32[]
                            for i in 0 .. p - 1 do d[2 * n + i] <- d[2 * n + i] + s[i]
                    | d ->
                        let d = d :?> float[]
                        Array.Copy(shares[0].Data, 0, d, 2 * n, p)
                        for c in 1 .. shares.Length - 1 do
                            let s = shares[c].Data :?> float[]
                            for i in 0 .. p - 1 do d[2 * n + i] <- d[2 * n + i] + s[i] }
    forward, adjoint

/// One fused adjoint solve: the field, the two solves' methods, the grid and the checkpoints the forward pass keeps.
type Run =
    { Layers: AffineLayer[]
      Kernels: IKernels
      /// Makes the system solved forward (its state: x0's entries first, then any zero-initialised ones) and its
      /// adjoint system [y; a; μ], solved backward, on one workspace per chunk of rows, for the tracked parameters.
      Systems: IKernels -> Workspace[] -> (int * int)[] -> bool[] -> IBufferSystem * IBufferSystem
      Pool: WorkspacePool
      /// The chunks of rows (start, count), evaluated side by side; the pool's key of each chunk's workspace, and how
      /// to make one.
      Chunks: (int * int)[]
      Keys: string[]
      Make: int -> Workspace
      Tableau: ButcherTableau
      Control: StepControl
      BackwardTableau: ButcherTableau
      BackwardControl: StepControl
      Seminorm: bool
      /// Output times with the checkpoints between them.
      Grid: float[]
      /// The shape of x0 and its number of entries; the state's entries.
      Shape: int64[]
      InputLength: int
      Length: int
      GradX: bool
      /// Which parameters require grad (in the order of `parameters`).
      Tracked: bool[]
      /// The states at the grid's times (host arrays of Length entries), written by the forward pass.
      Checkpoints: Array[]
      Statistics: BackwardStatistics
      mutable ForwardStatistics: SolveStatistics }

let private snapshot (y: Buffer) (count: int) =
    let a = Array.CreateInstance(y.Data.GetType().GetElementType(), count)
    Array.Copy(y.Data, a, count)
    a

/// Runs `action` on a workspace rented from the pool for the pass (its weights refreshed from the parameters) and
/// the run's systems on it, and gives the workspace back. Each pass rents its own: nothing of the forward pass but
/// the checkpoints (host arrays in the run) is needed by the backward pass, so a forward pass whose backward pass
/// never comes (evaluation with grad enabled) keeps no workspace, and a backward pass may run after later solves.
let private withWorkspace (run: Run) (action: Workspace -> IBufferSystem * IBufferSystem -> 'a) : 'a =
    let workspaces = Array.zeroCreate<Workspace> run.Chunks.Length
    try
        for c in 0 .. run.Chunks.Length - 1 do
            workspaces[c] <- run.Pool.Rent(run.Keys[c], fun () -> run.Make (snd run.Chunks[c]))
            workspaces[c].Refresh run.Layers
        action workspaces[0] (run.Systems run.Kernels workspaces run.Chunks run.Tracked)
    finally
        for c in 0 .. run.Chunks.Length - 1 do
            if not (isNull (box workspaces[c])) then run.Pool.Return(run.Keys[c], workspaces[c])

/// The forward pass: solves from [x0; 0] over the grid, keeping the states at its times; returns the state at the
/// last one (a new 1-D tensor).
let forward (run: Run) (x0: Tensor) : Tensor =
    use _ = torch.no_grad()
    withWorkspace run (fun ws (system, _) ->
        let n = run.Length
        let b = ws.Scratch($"forward/{run.Tableau.Stages}/{n}", fun () -> new StageBuffers(x0.dtype, n, run.Tableau.Stages))
        (use flat = x0.reshape(1L, -1L)
         use head = b.Y.Tensor.narrow(1L, 0L, int64 run.InputLength)
         head.copy_(flat) |> ignore)
        Array.Clear(b.Y.Data, run.InputLength, n - run.InputLength)
        run.Checkpoints[0] <- snapshot b.Y n
        run.ForwardStatistics <- solve run.Kernels system b run.Tableau run.Control run.Grid n (fun k y -> run.Checkpoints[k] <- snapshot y n)
        Array.Copy(run.Checkpoints[run.Grid.Length - 1], b.Dense.Data, n)
        (use d = b.Dense.Tensor.clone() in d.reshape(int64 n)))

/// The backward pass: from ḡ = dL/dy(t_N) (the state's entries), the gradients of x0 (null unless it requires grad)
/// and of the parameters (in the order of `parameters`; null when none requires grad).
let backward (run: Run) (g: Tensor) : Tensor * Tensor[] =
    use _ = torch.no_grad()
    withWorkspace run (fun ws (_, system) ->
    let n = run.Length
    let length = system.Length
    let tableau = run.BackwardTableau
    let b = ws.Scratch($"backward/{tableau.Stages}/{length}", fun () -> new StageBuffers(g.dtype, length, tableau.Stages))
    (use flat = g.reshape(1L, -1L)
     use a = b.Y.Tensor.narrow(1L, int64 n, int64 n)
     a.copy_(flat) |> ignore)
    Array.Clear(b.Y.Data, 2 * n, length - 2 * n)
    // [a; μ] at the end of a segment, carried to the next.
    let carried = Array.CreateInstance(b.Y.Data.GetType().GetElementType(), length - n)
    let grid = run.Grid
    for m in grid.Length - 1 .. -1 .. 1 do
        Array.Copy(run.Checkpoints[m], 0, b.Y.Data, 0, n)
        let span = [| grid[m]; grid[m - 1] |]
        // The generic backward solve's checks on its problem (a finite augmented state, the control's options).
        Integrate.validate (OdeProblem.create (fun _ z -> z) b.Y.Tensor span) tableau run.BackwardControl
        let statistics =
            solve run.Kernels system b tableau run.BackwardControl span (if run.Seminorm then 2 * n else length)
                (fun _ y -> Array.Copy(y.Data, n, carried, 0, length - n))
        run.Statistics.Add statistics
        Array.Copy(carried, 0, b.Y.Data, n, length - n)
    run.Statistics.BackwardPasses <- run.Statistics.BackwardPasses + 1
    let slice (offset: int) (count: int) (shape: int64[]) =
        use part = b.Y.Tensor.narrow(1L, int64 offset, int64 count)
        use owned = part.clone()
        owned.reshape(shape)
    let gx = if run.GradX then slice n run.InputLength run.Shape else null
    let gParams =
        let ps = parameters run.Layers
        if not (Array.exists id run.Tracked) then Array.create ps.Length null
        else
            let mutable offset = 2 * n
            ps |> Array.map (fun p ->
                let count = int (p.numel())
                let gp = slice offset count p.shape
                offset <- offset + count
                gp)
    gx, gParams)

/// The custom autograd function: inputs [| Run; x0; parameters… |], output [| y(t_N) |] (1-D).
type FusedAdjointFunction() =
    inherit torch.autograd.MultiTensorFunction<FusedAdjointFunction>()

    override _.Name = "FusedAdjoint"

    override _.forward(ctx, vars) =
        let run = vars[0] :?> Run
        let y = forward run (vars[1] :?> Tensor)
        ctx.save_data("run", run)
        run.Pool.Hand [ y ]
        List<Tensor>([ y ])

    override _.backward(ctx, grads) =
        // Runs as a callback from libtorch's engine, where a .NET exception cannot pass (see BackwardFailure).
        let run = ctx.get_data("run") :?> Run
        let ps = parameters run.Layers
        try
            use g = grads[0]
            let gx, gParams = backward run g
            run.Pool.Hand(Seq.append [ gx ] gParams)
            List<Tensor>(Seq.concat [ [ null; gx ]; List.ofArray gParams ])
        with e ->
            BackwardFailure.record e
            try
                let shapes = Array.append [| run.Shape |] (ps |> Array.map (fun p -> p.shape))
                List<Tensor>(Seq.append [ null ] (shapes |> Seq.map (fun s -> BackwardFailure.rejectedGradient s ps[0].dtype torch.CPU)))
            with _ -> List<Tensor>(Array.create (2 + ps.Length) (null: Tensor))

/// The checkpoint grid of an adjoint solve over `times` with `checkpoints` extra points per interval, or None where
/// the generic adjoint refuses it (and raises its own error then): a negative count, more points than
/// Ode.maxCheckpointGrid, or points that round together.
let checkpointGrid (times: float[]) (checkpoints: int) : float[] option =
    let points = int64 (times.Length - 1) * (int64 checkpoints + 1L) + 1L
    if checkpoints < 0 || points > int64 Ode.maxCheckpointGrid then None
    else
        let grid = fst (AdjointFunction.grid times checkpoints)
        try
            Internal.Guard.timeGrid "times" grid |> ignore
            Some grid
        with _ -> None

/// Whether the adjoint state [y; a; μ] of a forward state of `length` entries fits a .NET array.
let adjointFits (layers: AffineLayer[]) (length: int) =
    2L * int64 length + (parameterSizes layers |> Array.sumBy int64) <= int64 Array.MaxLength

/// Whether a solve from x must be differentiable: gradients are enabled and x or a parameter requires them.
let needsGradient (layers: AffineLayer[]) (x: Tensor) =
    torch.is_grad_enabled () && (x.requires_grad || parameters layers |> Array.exists (fun p -> p.requires_grad))

/// Solves the system `systems` makes (forward, adjoint) on a rented workspace, from [x; 0] over `grid` (validated
/// by the caller), and returns the state at its last time (1-D), differentiable by the fused adjoint (backward solves
/// by `backwardTableau` under `backwardControl`, the seminorm when `seminorm`) when gradients are enabled and x or a
/// parameter requires them; with the forward solve's statistics and the backward statistics its backward pass will
/// fill. `kind` tells workspaces of different systems apart; `length` is the forward system's.
let solveSystem (pool: WorkspacePool) (layers: AffineLayer[]) (kind: string) (length: int) (systems: IKernels -> Workspace[] -> (int * int)[] -> bool[] -> IBufferSystem * IBufferSystem)
                (tableau: ButcherTableau) (control: StepControl) (backwardTableau: ButcherTableau) (backwardControl: StepControl)
                (seminorm: bool) (grid: float[]) (x: Tensor) : Tensor * SolveStatistics * BackwardStatistics =
    let features = layers[0].InFeatures
    let m = int (x.numel())
    let rows = m / features
    let tracked = parameters layers |> Array.map (fun p -> p.requires_grad)
    let store = needsGradient layers x
    // Chunks of at least FusedRungeKutta.chunkRows rows, one per intra-op thread (not for wide layers, whose
    // products libtorch shares between its threads itself), as the fused solver splits its batch.
    let widest = layers |> Array.map (fun l -> max l.InFeatures l.OutFeatures) |> Array.max
    let count = if widest > FusedRungeKutta.splitWidth then 1 else max 1 (min (torch.get_num_threads ()) (rows / FusedRungeKutta.chunkRows))
    let chunks = Array.init count (fun c -> let r0 = rows * c / count in r0, rows * (c + 1) / count - r0)
    let keys = chunks |> Array.map (fun (_, r) -> $"adjoint/{kind}/{x.dtype}/{r}/{signature layers}")
    let make (r: int) = new Workspace(x.dtype, r, layers, 1, 1, true)
    let kernels = kernelsFor x.dtype
    let run =
        { Layers = layers; Kernels = kernels; Systems = systems; Pool = pool; Chunks = chunks; Keys = keys; Make = make
          Tableau = tableau; Control = control; BackwardTableau = backwardTableau; BackwardControl = backwardControl
          Seminorm = seminorm; Grid = grid; Shape = x.shape; InputLength = m; Length = length; GradX = x.requires_grad
          Tracked = tracked; Checkpoints = Array.zeroCreate grid.Length; Statistics = BackwardStatistics()
          ForwardStatistics = { FunctionEvaluations = 0; AcceptedSteps = 0; RejectedSteps = 0 } }
    pool.FreeHanded()
    if store then
        let inputs: obj[] = Array.append [| box run; box x |] (parameters layers |> Array.map box)
        let y = FusedAdjointFunction.apply(inputs)[0]
        // TorchSharp wraps the forward's output anew: the forward's own wrapper is freed here.
        pool.FreeHanded()
        y, run.ForwardStatistics, run.Statistics
    else
        let y = forward run x
        y, run.ForwardStatistics, run.Statistics

/// Solves dz/dt = field(z) from x over `grid` (see solveSystem) and returns z at the last time, shaped like x.
let solve (pool: WorkspacePool) (layers: AffineLayer[]) (tableau: ButcherTableau) (control: StepControl)
          (backwardTableau: ButcherTableau) (backwardControl: StepControl) (seminorm: bool) (grid: float[]) (x: Tensor)
          : Tensor * SolveStatistics * BackwardStatistics =
    let n = int (x.numel())
    let systems kernels (workspaces: Workspace[]) (chunks: (int * int)[]) tracked =
        let rows = Array.map2 (fun ws (start, count) -> FieldRows(kernels, ws, layers, tracked, start, count, n) :> IRowEvaluator) workspaces chunks
        chunkedSystems rows workspaces layers n
    let flat, forward, backward = solveSystem pool layers "field" n systems tableau control backwardTableau backwardControl seminorm grid x
    use flat = flat
    flat.reshape(x.shape), forward, backward
