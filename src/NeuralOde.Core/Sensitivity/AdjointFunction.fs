/// The adjoint methods as a TorchSharp custom autograd function: the forward pass solves without building a graph
/// and keeps only the states at checkpoints; the backward pass integrates the adjoint system (AdjointSystem) from
/// the last output time to the first, adding ∂L/∂x(t_k) to the adjoint at each output time t_k (the jumps of
/// Proposition 1 with losses at intermediate times), and returns gradients for x0, the output times and the
/// parameters. Memory is constant in the number of steps (backsolve) or bounded by the steps between two
/// checkpoints (interpolated).
module internal NeuralOde.Core.AdjointFunction

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// Everything the backward pass needs besides tensors.
type Config =
    { Field: VectorField
      /// The field's vector–Jacobian products in closed form, when the problem has them.
      Vjp: VectorJacobianProduct option
      Loss: IntegralLoss option
      /// The user's output times.
      Times: float[]
      /// Output times with the checkpoints between them; Grid[OutputIndex[k]] = Times[k].
      Grid: float[]
      OutputIndex: int[]
      Shape: int64[]
      Parameters: Tensor[]
      Forward: ButcherTableau * StepControl
      Backward: ButcherTableau * StepControl
      Seminorm: bool
      Interpolated: bool
      Statistics: BackwardStatistics
      /// The output times as a tensor when their gradient is wanted, else null.
      TimeTensor: Tensor
      mutable ForwardStatistics: SolveStatistics
      /// The tensors the forward pass made and handed to TorchSharp, which wraps its outputs anew and keeps its own
      /// reference to what is saved for the backward: the caller of `apply` frees these when it returns.
      Handed: List<Tensor> }

let private shapes (cfg: Config) = Array.append [| cfg.Shape; cfg.Shape |] (cfg.Parameters |> Array.map (fun p -> p.shape))

/// The error norm of a backward solve: the full scaled norm, or the seminorm over the first `channels` elements.
let private norm (cfg: Config) (channels: int64) =
    if not cfg.Seminorm then None
    else Some(fun rtol atol (err: Tensor) (y0: Tensor) (y1: Tensor) ->
        use e = err.narrow(0L, 0L, channels)
        use a = y0.narrow(0L, 0L, channels)
        use b = y1.narrow(0L, 0L, channels)
        ErrorNorm.scaled rtol atol e a b)

/// Solves a flat backward problem from `from` to `until` and returns its final flat state.
let private solveBackward (cfg: Config) (field: VectorField) (y: Tensor) (from: float) (until: float) (channels: int64) =
    let solver, control = cfg.Backward
    let problem = OdeProblem.create field y [| from; until |]
    let solution, _ = Integrate.solveWith { Integrate.defaultSettings with ErrorNorm = norm cfg channels } problem solver control
    cfg.Statistics.Add solution.Statistics
    use s = solution.States
    s[1L].clone()

/// Backsolve over one segment: [x; a; μ] from `from` back to `until`, with x restarted from the checkpoint.
let private backsolveSegment (cfg: Config) weight (x: Tensor) (a: Tensor) (mu: Tensor[]) from until =
    let layout = shapes cfg
    let field: VectorField =
        fun t y ->
            let parts = FlatState.unpack y layout
            let dx, da, dTheta = AdjointSystem.derivatives cfg.Field cfg.Vjp cfg.Loss weight cfg.Parameters t parts[0] parts[1]
            FlatState.pack y.dtype (Array.append [| dx; da |] dTheta)
    use y = FlatState.pack x.dtype (Array.append [| x; a |] mu)
    use final = solveBackward cfg field y from until (2L * FlatState.numel cfg.Shape)
    let parts = FlatState.unpack final layout
    parts[1].clone(), parts[2..] |> Array.map (fun p -> p.clone())

/// Interpolated over one segment: the forward solution from the checkpoint at `until` is recomputed and recorded,
/// then [a; μ] is integrated from `from` back to `until` against it.
let private interpolatedSegment (cfg: Config) weight (xStart: Tensor) (a: Tensor) (mu: Tensor[]) from until =
    let solver, control = cfg.Forward
    let forward, recorded =
        Integrate.solveWith { Integrate.defaultSettings with Record = true } (OdeProblem.create cfg.Field xStart [| until; from |]) solver control
    cfg.Statistics.Add forward.Statistics
    (forward :> IDisposable).Dispose()
    use trajectory = recorded.Value
    let layout = Array.append [| cfg.Shape |] (cfg.Parameters |> Array.map (fun p -> p.shape))
    let field: VectorField =
        fun t y ->
            let parts = FlatState.unpack y layout
            use x = trajectory.EvaluateWithin t
            let _, da, dTheta = AdjointSystem.derivatives cfg.Field cfg.Vjp cfg.Loss weight cfg.Parameters t x parts[0]
            FlatState.pack y.dtype (Array.append [| da |] dTheta)
    use y = FlatState.pack a.dtype (Array.append [| a |] mu)
    use final = solveBackward cfg field y from until (FlatState.numel cfg.Shape)
    let parts = FlatState.unpack final layout
    parts[0].clone(), parts[1..] |> Array.map (fun p -> p.clone())

/// What solves of the same field share: its first parameter tensor (a module's parameters are the same objects in
/// every solve), or nothing for a field without declared parameters.
let private gateKey (cfg: Config) : obj = if cfg.Parameters.Length > 0 then box cfg.Parameters[0] else null

type OdeAdjoint() =
    inherit torch.autograd.MultiTensorFunction<OdeAdjoint>()

    override _.Name = "OdeAdjoint"

    /// vars: [| Config; x0; time tensor or null; parameters...; sentinel |] → [| states at the output times; ∫ l dt |].
    override this.forward(ctx, vars) =
        let cfg = vars[0] :?> Config
        Internal.SolveGate.run (gateKey cfg) (fun () -> this.Forward(ctx, vars))

    member private _.Forward(ctx: torch.autograd.AutogradContext, vars: obj[]) : List<Tensor> =
        let cfg = vars[0] :?> Config
        let x0 = vars[1] :?> Tensor
        let solver, control = cfg.Forward
        let solution =
            match cfg.Loss with
            | None -> Integrate.solve (OdeProblem.create cfg.Field x0 cfg.Grid) solver control
            | Some l ->
                use y0 = RunningLoss.initial x0
                Integrate.solve (OdeProblem.create (RunningLoss.augmentedField cfg.Field l cfg.Shape) y0 cfg.Grid) solver control
        cfg.ForwardStatistics <- solution.Statistics
        let gridStates, integral =
            match cfg.Loss with
            | None -> solution.States, torch.zeros([||], dtype = x0.dtype, device = x0.device)
            | Some _ ->
                let xs, q = RunningLoss.split cfg.Shape solution.States
                solution.States.Dispose()
                xs, q
        use index = torch.tensor(cfg.OutputIndex |> Array.map int64, device = x0.device)
        let outputs = gridStates.index_select(0L, index)
        ctx.save_for_backward(List<Tensor>([ gridStates ]))
        ctx.save_data("config", cfg)
        cfg.Handed.AddRange [ outputs; integral; gridStates ]
        List<Tensor>([ outputs; integral ])

    override this.backward(ctx, grads) =
        let cfg = ctx.get_data("config") :?> Config
        // Solves that share parameter tensors run their adjoint passes one at a time (Internal/SolveGate).
        Internal.SolveGate.run (gateKey cfg) (fun () -> this.BackwardGuarded(ctx, grads))

    member private this.BackwardGuarded(ctx: torch.autograd.AutogradContext, grads: List<Tensor>) : List<Tensor> =
        // A .NET exception must not leave this callback (see BackwardFailure): record it and make libtorch fail.
        // The config and the incoming gradients' dtype and device are read first, while those gradients are alive.
        let cfg = ctx.get_data("config") :?> Config
        let mutable like = None
        try
            like <- Some(grads[0].dtype, grads[0].device)
            this.Backward(ctx, grads)
        with e ->
            BackwardFailure.record e
            let nulls () = List<Tensor>(Array.create (4 + cfg.Parameters.Length) (null: Tensor))
            match like with
            | None -> nulls ()
            | Some(dtype, device) ->
                try
                    // Every tensor input gets a gradient libtorch rejects: whichever it checks first stops the pass.
                    let rejected (shape: int64[]) = BackwardFailure.rejectedGradient shape dtype device
                    let time = if isNull cfg.TimeTensor then null else rejected cfg.TimeTensor.shape
                    List<Tensor>(Seq.concat [ [ null; rejected cfg.Shape; time ]
                                              List.ofArray (cfg.Parameters |> Array.map (fun p -> rejected p.shape))
                                              [ rejected [| 1L |] ] ])
                with _ -> nulls ()

    member private _.Backward(ctx: torch.autograd.AutogradContext, grads: List<Tensor>) : List<Tensor> =
        let cfg = ctx.get_data("config") :?> Config
        // TorchSharp makes a wrapper for each incoming gradient and each unpacked saved tensor and leaves them to us.
        use gridStates = ctx.get_saved_variables()[0]
        use gStates = grads[0]
        use gIntegral = grads[1]
        let weight = if cfg.Loss.IsSome then gIntegral.ToDouble() else 0.0
        let last = cfg.Times.Length - 1
        let gTimes = Array.zeroCreate<float> cfg.Times.Length
        let stateAt (m: int) = gridStates[int64 m]
        let mutable a = (use atLast = gStates[int64 last] in atLast.clone())
        let mutable mu = cfg.Parameters |> Array.map (fun p -> torch.zeros(p.shape, dtype = gridStates.dtype, device = gridStates.device))
        (use xEnd = stateAt cfg.OutputIndex[last]
         gTimes[last] <- AdjointSystem.endTimeDerivative cfg.Field cfg.Loss weight cfg.Times[last] xEnd a)
        let mutable k = last
        for m in cfg.Grid.Length - 1 .. -1 .. 1 do
            use scope = torch.NewDisposeScope()
            let a', mu' =
                if cfg.Interpolated then interpolatedSegment cfg weight (stateAt (m - 1)) a mu cfg.Grid[m] cfg.Grid[m - 1]
                else backsolveSegment cfg weight (stateAt m) a mu cfg.Grid[m] cfg.Grid[m - 1]
            a.Dispose()
            for p in mu do p.Dispose()
            a <- a'.MoveToOuterDisposeScope()
            mu <- mu' |> Array.map (fun p -> p.MoveToOuterDisposeScope())
            if m - 1 = cfg.OutputIndex[k - 1] then
                k <- k - 1
                if k > 0 then
                    use g = gStates[int64 k]
                    use xk = stateAt (m - 1)
                    gTimes[k] <- AdjointSystem.endTimeDerivative cfg.Field None 0.0 cfg.Times[k] xk g
                    let jumped = TensorOps.plus a g
                    a.Dispose()
                    a <- jumped.MoveToOuterDisposeScope()
        (use x0 = stateAt 0
         gTimes[0] <- -(AdjointSystem.endTimeDerivative cfg.Field cfg.Loss weight cfg.Times[0] x0 a))
        use g0 = gStates[0L]
        let gx0 = TensorOps.plus a g0
        a.Dispose()
        cfg.Statistics.BackwardPasses <- cfg.Statistics.BackwardPasses + 1
        // Each gradient in its parameter's dtype and on its device; the wrappers converted from are freed here (a
        // conversion that changes nothing still makes a new wrapper).
        let gParams = Array.map2 (fun (g: Tensor) (p: Tensor) -> (use g = g in g.``to``(p.dtype, p.device))) mu cfg.Parameters
        let timeTensor = cfg.TimeTensor
        let gTime =
            if isNull timeTensor then null
            else (use host = torch.tensor(gTimes, dtype = torch.float64) in host.``to``(timeTensor.dtype, timeTensor.device))
        // The last input is Ode's sentinel, which gets no gradient when the pass succeeds.
        List<Tensor>(Seq.concat [ [ null; gx0; gTime ]; List.ofArray gParams; [ null ] ])

/// Builds the checkpoint grid: `extra` equally spaced points inside each interval between output times.
let grid (times: float[]) (extra: int) =
    let points =
        [| for k in 0 .. times.Length - 2 do
               for j in 0 .. extra do
                   yield times[k] + (times[k + 1] - times[k]) * float j / float (extra + 1)
           yield times[times.Length - 1] |]
    points, Array.init times.Length (fun k -> k * (extra + 1))
