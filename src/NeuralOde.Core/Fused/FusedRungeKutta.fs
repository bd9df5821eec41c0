/// The fused solver: fixed-step explicit Runge–Kutta on a recognised MLP field (MlpField), with gradients by the
/// discrete adjoint of the same steps — what autograd through the generic solver computes, as one custom autograd
/// function. The whole solve runs on preallocated buffers (a workspace kept between solves of the same shape), so an
/// iteration allocates nothing in steady state; each evaluation's activations are kept for the backward pass, and the
/// backward pass walks the steps in reverse: for step y' = y + h Σ b_i k_i, k_i = f(y + h Σ_j a_ij k_j),
///   k̄_i = h b_i ȳ' + Σ_{j>i} h a_ji ū_j,   ū_i = (∂f/∂u)ᵀ k̄_i (and the parameters' share),   ȳ = ȳ' + Σ_i ū_i.
/// For a FSAL tableau the first stage of a step is the previous step's last, and its cotangent is carried back to it.
module internal NeuralOde.Core.Fused.FusedRungeKutta

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal
open NeuralOde.Core.Fused.MlpField
open NeuralOde.Core.Fused.Kernels
open NeuralOde.Core.Fused.Workspace

/// The steps (t, h) of a fixed-step control from t0 to tEnd, exactly as the generic loop takes them (the last step
/// shortened to land on tEnd); None when the generic loop would fail instead (a step that no longer advances time,
/// more steps than the budget), so that the generic solver raises its own error.
let stepPlan (t0: float) (tEnd: float) (control: StepControl) : (float * float)[] option =
    let h = match control with StepControl.Adaptive _ -> nan | _ -> Integrate.firstStep control t0 tEnd (fun _ -> nan)
    if Double.IsNaN h || Double.IsInfinity h then None
    else
        let budget = Integrate.stepBudget control
        let steps = List<float * float>()
        let mutable t = t0
        let mutable landed = false
        let mutable ok = true
        while ok && not landed do
            if steps.Count >= budget || abs h < Integrate.minimumStep t || t + h = t then ok <- false
            else
                let hStep, tNew, lands = Integrate.stepTo t h tEnd
                landed <- lands
                steps.Add((t, hStep))
                t <- tNew
        if ok then Some(steps.ToArray()) else None

/// Which evaluation computes stage i of step n, for a tableau of s stages (FSAL: stage 0 of step n > 0 is stage s−1
/// of step n − 1), and how many evaluations n steps take.
let evaluationIndex (tableau: ButcherTableau) (n: int) (i: int) =
    let s = tableau.Stages
    if not tableau.Fsal then n * s + i
    elif i = 0 then (if n = 0 then 0 else 1 + (n - 1) * (s - 1) + (s - 2))
    else 1 + n * (s - 1) + (i - 1)

/// The fewest rows a chunk of a split solve gets (Split): below this a second thread costs more than it saves.
let mutable chunkRows = 256

/// Fields with a layer wider than this are not split (Split).
let mutable splitWidth = 512

let evaluationCount (tableau: ButcherTableau) (steps: int) =
    if tableau.Fsal then 1 + steps * (tableau.Stages - 1) else steps * tableau.Stages

/// One fused solve: what it solves and the workspace it runs in.
type Run =
    { Layers: AffineLayer[]
      Tableau: ButcherTableau
      Steps: (float * float)[]
      Kernels: IKernels
      Workspace: Workspace
      Generation: int64
      Pool: WorkspacePool
      Key: string
      /// Keep every evaluation's activations for a backward pass.
      Store: bool
      /// The shape of x0 (the solve runs on rows × features).
      Shape: int64[]
      GradX: bool
      GradParameters: bool }

let private slotOf (run: Run) n i =
    let e = evaluationIndex run.Tableau n i
    if run.Store then e else e % run.Workspace.Slots

let private evaluate (run: Run) (slot: int) = evaluateSlot run.Kernels run.Workspace run.Layers slot

/// Forward: steps x0 (rows × features) to the end and returns the final state (a new tensor of x0's shape).
let forward (run: Run) (x0: Tensor) : Tensor =
    // Grad mode is per thread: a chunk's worker thread has it on, and the buffers' in-place updates must not be recorded.
    use _ = torch.no_grad()
    let ws = run.Workspace
    let tableau = run.Tableau
    let s = tableau.Stages
    ws.Refresh run.Layers
    (use flat = x0.reshape(-1L, int64 ws.Y.Cols) in ws.Y.Tensor.copy_(flat) |> ignore)
    for n in 0 .. run.Steps.Length - 1 do
        let t, h = run.Steps[n]
        Cancellation.check t
        for i in 0 .. s - 1 do
            if not (tableau.Fsal && n > 0 && i = 0) then
                let slot = slotOf run n i
                let ks = Array.init i (fun j -> ws.K(slotOf run n j))
                run.Kernels.Combine(ws.Y, tableau.A[i] |> Array.map (fun a -> h * a), ks, ws.Input slot)
                ws.AtDepth(t + tableau.C[i] * h)
                evaluate run slot
        let ks = Array.init s (fun j -> ws.K(slotOf run n j))
        run.Kernels.Combine(ws.Y, tableau.B |> Array.map (fun b -> h * b), ks, ws.Y2)
        if not (run.Kernels.AllFinite ws.Y2) then
            raise (Integrate.nonFinite t $"The state became NaN or Inf in the step from t = {t} to {t + h}")
        ws.Swap()
    (use y = ws.Y.Tensor.clone() in y.reshape(run.Shape))

/// Backward: from ḡ = dL/dy(end), the gradients of x0 (null unless it requires grad) and of the parameters (in the
/// order of `parameters`; null unless they require grad).
let backward (run: Run) (gOut: Tensor) : Tensor * Tensor[] =
    use _ = torch.no_grad()
    let ws = run.Workspace
    if ws.Generation <> run.Generation then
        raise (InvalidOperationException("The fused solver's saved activations were reused by a later solve of the same block, so this backward pass (of a graph kept with retain_graph) cannot run. Call backward before the next forward, or set the block's UseFusedKernels to false."))
    let b = ws.Backward
    let tableau = run.Tableau
    let s = tableau.Stages
    let kernels = run.Kernels
    (use flat = gOut.reshape(-1L, int64 ws.Y.Cols) in b.YBar.Tensor.copy_(flat) |> ignore)
    clearGradients ws
    let touched = Array.zeroCreate<bool> s
    let mutable carry = false
    for n in run.Steps.Length - 1 .. -1 .. 0 do
        let t, h = run.Steps[n]
        // The backward pass stops at its next step too (it ran to the end: cancellation took 13.5 s to act).
        Cancellation.check t
        for i in 0 .. s - 1 do
            let c = h * tableau.B[i]
            touched[i] <- c <> 0.0
            if touched[i] then kernels.Scale(b.YBar, c, b.KBar[i])
        if carry then
            if touched[s - 1] then kernels.AddScaled(b.KBar[s - 1], 1.0, b.Carry)
            else b.KBar[s - 1].Tensor.copy_(b.Carry.Tensor) |> ignore
            touched[s - 1] <- true
            carry <- false
        for i in s - 1 .. -1 .. 0 do
            if touched[i] then
                if tableau.Fsal && i = 0 && n > 0 then
                    b.Carry.Tensor.copy_(b.KBar[0].Tensor) |> ignore
                    carry <- true
                else
                    let slot = slotOf run n i
                    let s = t + tableau.C[i] * h
                    ws.AtDepth s
                    // ū_i = (∂f/∂u)ᵀ k̄_i through the layers, last to first (k̄_i becomes δ in place).
                    vectorJacobianProduct kernels ws run.Layers slot s b.KBar[i] run.GradParameters
                    kernels.AddScaled(b.YBar, 1.0, b.UBar)
                    for j in 0 .. i - 1 do
                        let a = tableau.A[i][j]
                        if a <> 0.0 then
                            if touched[j] then kernels.AddScaled(b.KBar[j], h * a, b.UBar)
                            else kernels.Scale(b.UBar, h * a, b.KBar[j])
                            touched[j] <- true
    let gx = if run.GradX then (use g = b.YBar.Tensor.clone() in g.reshape(run.Shape)) else null
    let gParams =
        if not run.GradParameters then Array.create (parameters run.Layers).Length null
        else parameterGradients ws run.Layers
    gx, gParams

/// The same solve replayed with differentiable tensor ops (autograd records it): used when a backward pass itself is
/// differentiated (create_graph), which the discrete adjoint above does not record.
let private replay (run: Run) (shape: int64[]) (x0: Tensor) : Tensor =
    let tableau = run.Tableau
    let f (s: float) (z: Tensor) =
        let mutable h = z
        for l in run.Layers do
            let a =
                match l.Galerkin with
                | Some g -> g.forward(h, s)
                | None -> torch.nn.functional.linear(h, l.Weight, (if isNull l.Bias then null else l.Bias))
            h <-
                match l.Activation with
                | None -> a
                | Some Tanh -> a.tanh()
                | Some Sigmoid -> a.sigmoid()
                | Some Relu -> a.relu()
                | Some Softplus -> torch.nn.functional.softplus(a)
        h
    let mutable y = x0.reshape(-1L, int64 run.Layers[0].InFeatures)
    for t, h in run.Steps do
        let ks = Array.zeroCreate<Tensor> tableau.Stages
        for i in 0 .. tableau.Stages - 1 do
            let mutable u = y
            for j in 0 .. i - 1 do
                if tableau.A[i][j] <> 0.0 then u <- TensorOps.addScaled u ks[j] (h * tableau.A[i][j])
            ks[i] <- f (t + tableau.C[i] * h) u
        let mutable next = y
        for i in 0 .. tableau.Stages - 1 do
            if tableau.B[i] <> 0.0 then next <- TensorOps.addScaled next ks[i] (h * tableau.B[i])
        y <- next
    y.reshape(shape)

/// A fused solve split by rows into chunks solved side by side, one thread each: the field acts on each row alone,
/// so the chunks' solves are independent until their parameter gradients are summed. Each chunk is a Run on its own
/// workspace, and its thread runs libtorch's kernels (the matrix products) single-threaded, so that each chunk has
/// one core to itself instead of every product being shared between the cores.
type Split =
    { Runs: Run[]
      /// Each chunk's rows [r0, r1) of x reshaped to rows × features.
      Bounds: (int * int)[]
      Features: int
      /// The shape of x0.
      Shape: int64[] }

let private threadGate = obj ()
let mutable private splitSolves = 0
let mutable private savedThreads = 0

// libtorch's thread settings are partly per thread (OpenMP's count and MKL's local count belong to the thread that sets
// them) and partly process-wide: each chunk's worker thread sets its own to one, so that its products and element-wise
// ops start no OpenMP team of their own (a team's threads spin after each region and slowed every later libtorch op:
// W1's interleaved hand-written floor took 200 ms instead of 40), and puts back, when it ends, the setting recorded
// when the first of any concurrent split solves began.
let private enterSplit () =
    lock threadGate (fun () ->
        if splitSolves = 0 then savedThreads <- torch.get_num_threads ()
        splitSolves <- splitSolves + 1
        savedThreads)

let private leaveSplit () =
    lock threadGate (fun () ->
        splitSolves <- splitSolves - 1
        if splitSolves = 0 then torch.set_num_threads savedThreads)

/// Runs the chunks' work in parallel, each chunk's thread with libtorch's intra-op threads set to one (restored after).
/// A failure of several chunks raises the one at the earliest time.
let inParallel (count: int) (work: int -> unit) =
    if count = 1 then work 0
    else
        let restore = enterSplit ()
        try
            try
                Threading.Tasks.Parallel.For(0, count, fun c ->
                    torch.set_num_threads 1
                    try work c finally torch.set_num_threads restore) |> ignore
            with :? AggregateException as e ->
                let inner = e.Flatten().InnerExceptions |> Seq.toArray
                let solveFailures = inner |> Array.choose (function :? OdeSolveException as f -> Some f | _ -> None)
                let chosen = if solveFailures.Length > 0 then (solveFailures |> Array.minBy (fun f -> f.Time)) :> exn else inner[0]
                Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(chosen).Throw()
        finally leaveSplit ()

let private rowsOf (split: Split) (x: Tensor) =
    use flat = x.reshape(-1L, int64 split.Features)
    split.Bounds |> Array.map (fun (r0, r1) -> flat.narrow(0L, int64 r0, int64 (r1 - r0)))

/// The split solve's forward: each chunk's final state, concatenated (a new tensor of x0's shape).
let forwardSplit (split: Split) (x0: Tensor) : Tensor =
    if split.Runs.Length = 1 then forward split.Runs[0] x0
    else
        let parts = rowsOf split x0
        let ys = Array.zeroCreate<Tensor> parts.Length
        try
            inParallel parts.Length (fun c -> ys[c] <- forward split.Runs[c] parts[c])
            use joined = torch.cat(ys, 0L)
            joined.reshape(split.Shape)
        finally
            for t in Array.append parts ys do if not (isNull t) then t.Dispose()

/// The split solve's backward: x0's gradient concatenated from the chunks', the parameters' summed over them.
let backwardSplit (split: Split) (gOut: Tensor) : Tensor * Tensor[] =
    if split.Runs.Length = 1 then backward split.Runs[0] gOut
    else
        let parts = rowsOf split gOut
        let results = Array.zeroCreate<Tensor * Tensor[]> parts.Length
        try
            inParallel parts.Length (fun c -> results[c] <- backward split.Runs[c] parts[c])
            let gx =
                if split.Runs[0].GradX then (use joined = torch.cat(results |> Array.map fst, 0L) in joined.reshape(split.Shape))
                else null
            let gParams = snd results[0]
            for c in 1 .. results.Length - 1 do
                Array.iteri2 (fun i (total: Tensor) (part: Tensor) ->
                    if not (isNull total) then TensorOps.addScaledInPlace total part 1.0 |> ignore) gParams (snd results[c])
            gx, gParams
        finally
            for t in parts do t.Dispose()
            for c in 0 .. results.Length - 1 do
                let gx, gParams = results[c]
                if not (isNull gx) then gx.Dispose()
                if c > 0 then for g in gParams do if not (isNull g) then g.Dispose()

/// The custom autograd function: inputs [| Split; x0; parameters… |], output [| y(end) |].
type FusedSolveFunction() =
    inherit torch.autograd.MultiTensorFunction<FusedSolveFunction>()

    override _.Name = "FusedRungeKutta"

    override _.forward(ctx, vars) =
        let split = vars[0] :?> Split
        let x0 = vars[1] :?> Tensor
        let y = forwardSplit split x0
        ctx.save_for_backward(List<Tensor>([ x0 ]))
        ctx.save_data("split", split)
        split.Runs[0].Pool.Hand [ y ]
        List<Tensor>([ y ])

    override _.backward(ctx, grads) =
        // Runs as a callback from libtorch's engine, where a .NET exception cannot pass (see BackwardFailure).
        let split = ctx.get_data("split") :?> Split
        let run = split.Runs[0]
        let count = (parameters run.Layers).Length
        try
            use g = grads[0]
            use x0 = ctx.get_saved_variables()[0]
            if torch.is_grad_enabled () then
                // create_graph: the gradients must themselves be differentiable, so the solve is replayed with
                // autograd and differentiated with the graph kept (torch.autograd.grad would abort on a libtorch error).
                let ps = parameters run.Layers
                let inputs = Array.append (if run.GradX then [| x0 |] else [||]) (ps |> Array.filter (fun p -> p.requires_grad))
                let y = replay run split.Shape x0
                let gs = Internal.SafeAutograd.grad [| y |] inputs [| g |] true
                let mutable k = 0
                let next () =
                    let r = gs[k]
                    k <- k + 1
                    r
                let gx = if run.GradX then next () else null
                let gParams = ps |> Array.map (fun p -> if p.requires_grad then next () else null)
                List<Tensor>(Seq.concat [ [ null; gx ]; List.ofArray gParams ])
            else
            let gx, gParams = backwardSplit split g
            for r in split.Runs do r.Pool.Return(r.Key, r.Workspace)
            run.Pool.Hand(Seq.append [ gx ] gParams)
            List<Tensor>(Seq.concat [ [ null; gx ]; List.ofArray gParams ])
        with e ->
            BackwardFailure.record e
            try
                let shapes = Array.append [| split.Shape |] (parameters run.Layers |> Array.map (fun p -> p.shape))
                let dtype = (Array.head (parameters run.Layers)).dtype
                List<Tensor>(Seq.append [ null ] (shapes |> Seq.map (fun s -> BackwardFailure.rejectedGradient s dtype torch.CPU)))
            with _ -> List<Tensor>(Array.create (2 + count) (null: Tensor))

/// The layers of a recognised MLP field when x and every parameter are float32 or float64 on the CPU in one dtype and
/// x's last dimension is the field's width (whatever the step control: the fused field of the adjoints).
let tryFieldLayers (field: torch.nn.Module) (x: Tensor) : AffineLayer[] option =
    if x.device_type <> DeviceType.CPU || (x.dtype <> torch.float32 && x.dtype <> torch.float64) || x.dim() < 1L
       || x.numel() = 0L || x.numel() > int64 Int32.MaxValue then None
    else
        match tryRecognise field with
        | Some layers when int64 layers[0].InFeatures = x.shape[x.shape.Length - 1]
                           && parameters layers |> Array.forall (fun p -> p.dtype = x.dtype && p.device_type = DeviceType.CPU)
                           // Every buffer (rows × the widest layer) must fit a .NET array.
                           && x.numel() / int64 layers[0].InFeatures * int64 (layers |> Array.map (fun l -> max l.InFeatures l.OutFeatures) |> Array.max) <= int64 Array.MaxLength -> Some layers
        | _ -> None

/// Whether the fused solver runs this solve: a recognised MLP field, x and every parameter float32 or float64 on the
/// CPU in one dtype, the state's last dimension the field's width, fixed steps.
let tryLayers (field: torch.nn.Module) (x: Tensor) (control: StepControl) : AffineLayer[] option =
    match control with
    | StepControl.Adaptive _ -> None
    | _ -> tryFieldLayers field x

/// Solves dz/dt = field(z) from x over the steps and returns z(end), differentiable (by the discrete adjoint) when
/// gradients are enabled and x or a parameter requires them. Also returns the number of evaluations.
let solve (pool: WorkspacePool) (kernels: IKernels) (layers: AffineLayer[]) (tableau: ButcherTableau) (steps: (float * float)[]) (x: Tensor) : Tensor * int =
    let features = layers[0].InFeatures
    let rows = int (x.numel() / int64 features)
    let gradParameters = parameters layers |> Array.exists (fun p -> p.requires_grad)
    let store = torch.is_grad_enabled () && (x.requires_grad || gradParameters)
    let slots = if store then evaluationCount tableau steps.Length else tableau.Stages + 1
    // One chunk of rows per intra-op thread, each of at least `chunkRows` rows (128 was slower at batch 256: 13–21 ms
    // per W1 iteration against 9.5–11); not for wide layers, whose products libtorch shares well between threads
    // itself (at width 1024 the split gained nothing: 3.1–3.6 s per W1 iteration either way, alternated).
    let widest = layers |> Array.map (fun l -> max l.InFeatures l.OutFeatures) |> Array.max
    let chunks = if widest > splitWidth then 1 else max 1 (min (torch.get_num_threads ()) (rows / chunkRows))
    let bounds = Array.init chunks (fun c -> rows * c / chunks, rows * (c + 1) / chunks)
    let runs =
        bounds |> Array.map (fun (r0, r1) ->
            let n = r1 - r0
            let key = $"{x.dtype}/{n}/{signature layers}/{slots}/{tableau.Stages}/{store}"
            let ws = pool.Rent(key, fun () -> new Workspace(x.dtype, n, layers, slots, tableau.Stages, store))
            { Layers = layers; Tableau = tableau; Steps = steps; Kernels = kernels; Workspace = ws; Generation = ws.Generation
              Pool = pool; Key = key; Store = store; Shape = (if chunks = 1 then x.shape else [| int64 n; int64 features |]); GradX = x.requires_grad
              GradParameters = gradParameters })
    let split = { Runs = runs; Bounds = bounds; Features = features; Shape = x.shape }
    let giveBack () = for r in runs do pool.Return(r.Key, r.Workspace)
    let evaluations = evaluationCount tableau steps.Length
    pool.FreeHanded()
    if store then
        let inputs: obj[] = Array.append [| box split; box x |] (parameters layers |> Array.map box)
        let y =
            try FusedSolveFunction.apply(inputs)[0]
            with _ ->
                giveBack ()
                reraise ()
        // TorchSharp wraps the forward's output anew: the forward's own wrapper is freed here.
        pool.FreeHanded()
        y, evaluations
    else
        try
            use _ = torch.no_grad()
            forwardSplit split x, evaluations
        finally giveBack ()
