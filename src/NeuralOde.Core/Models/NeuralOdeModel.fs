namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A Neural ODE block (Chen et al. 2018; Massaroli et al. 2020, system (1) with h_x = identity): maps x to z(S),
/// the solution at the last of `times` of dz/ds = f_θ(s, x, z), z(times[0]) = x, where f_θ is a TorchSharp module.
/// The field composes like torchdyn's: before each evaluation the block tells every depth-aware module inside it
/// (GalLinear, GalConv2d, StackedLinear, DepthCat, any IDepthAware) the depth s, and every data-controlled one
/// (DataControl, any IDataControlled) the block's input x; autonomous modules are evaluated unchanged.
/// Gradients flow to the module's parameters and to x by the chosen sensitivity (autograd through the solver by
/// default); adjoint methods get the module's parameters (and x, when the field reads it and it requires grad)
/// without the user listing them. An optional running loss l(s, z) is integrated with the solve (Proposition 1);
/// its value comes with the output (ForwardWithIntegral, Trajectory).
type NeuralOdeModel(name: string, vectorField: Module<torch.Tensor, torch.Tensor>, solver: ButcherTableau,
                    control: StepControl, sensitivity: Sensitivity, times: float[], integralLoss: IntegralLoss option) as this =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    do
        if isNull vectorField then raise (System.ArgumentNullException("vectorField"))
        // libtorch's float32 convolutions are wrong on some CPUs unless oneDNN is off (Native/OneDnnCheck.fs).
        Native.OneDnnCheck.ensureCorrect () |> ignore
        StepControl.validate control
        Internal.Guard.timeGrid "times" times |> ignore
        this.register_module("vector_field", vectorField)
    let times = Array.copy times
    let dataControlled = not (ModuleField.dataControlled vectorField).IsEmpty
    let mutable last = SolveStatistics.Zero
    let mutable lastBackward = BackwardStatistics()
    // The field's parameters as constructed: disposing the block disposes them (TorchSharp's Module.Dispose), which is
    // how a disposed block is recognised. (Not an override of Dispose: TorchSharp's finaliser calls it also for a
    // block whose constructor threw, and a member of this `as this` class then raises on the finaliser thread,
    // ending the process.)
    let constructedParameters = vectorField.parameters() |> Seq.toArray
    /// A block with the default name "neural_ode", gradients by autograd through the solver and no running loss.
    new(vectorField, solver, control, times) =
        new NeuralOdeModel("neural_ode", vectorField, solver, control, Sensitivity.Autograd, times, None)

    /// A block with the default name "neural_ode" and no running loss.
    new(vectorField, solver, control, sensitivity, times) =
        new NeuralOdeModel("neural_ode", vectorField, solver, control, sensitivity, times, None)

    /// A block with no running loss.
    new(name, vectorField, solver, control, sensitivity, times) =
        new NeuralOdeModel(name, vectorField, solver, control, sensitivity, times, None)

    /// The vector field module.
    member _.VectorField = vectorField
    /// The solver (Butcher tableau).
    member _.Solver = solver
    /// The step control.
    member _.Control = control
    /// How gradients are computed.
    member _.Sensitivity = sensitivity
    /// The depth (time) grid; the block's output is the state at its last point.
    member _.Times = Array.copy times
    /// The running loss integrated with every solve, if any.
    member _.IntegralLoss = integralLoss
    /// Whether the field reads the block's input (it holds a data-controlled module).
    member _.IsDataControlled = dataControlled
    /// A regulariser built from the block's own field for each solve (e.g. Regularisers.weighted): its running loss is
    /// added to the integral (ForwardWithIntegral), and it sees the depth and data as the field does.
    member val Regulariser: (VectorField -> IntegralLoss) option = None with get, set
    interface ISolveStatistics with
        member _.LastStatistics = last
        member _.LastBackwardStatistics = lastBackward

    /// Which backend evaluates the field (default Auto): Auto compiles a field that is a Sequential of Linear and
    /// GalLinear layers, each optionally followed by tanh, sigmoid, ReLU or softplus, on a float32 or float64 CPU state
    /// whose dtype the parameters share (FieldBackend.forModule), and the solve runs on it where its sensitivity allows
    /// (Ode.solveWithOptions: autograd with fixed steps by the discrete adjoint of the steps, the adjoints, any solve
    /// that needs no gradient) with the same steps, evaluations and gradients as on tensors, to rounding. A field the
    /// backend does not recognise, a data-controlled field, a running loss or a regulariser run on tensors. Module
    /// always evaluates the module. LastStatistics.Backend says which ran. The compiled backend reads the layers'
    /// parameters directly: forward hooks make a field unrecognised, and GalLinear's LastWeights is not updated.
    member val Backend = FieldBackendChoice.Auto with get, set
    /// Threads a compiled backend splits the batch over (None: libtorch's intra-op count at each solve).
    member val Threads: int option = None with get, set

    /// Statistics of the most recent forward solve.
    member _.LastStatistics = last
    /// Statistics of the backward solve of the most recent forward solve, once backward() has run through it
    /// (adjoint sensitivities only; zero for autograd).
    member _.LastBackwardStatistics = lastBackward

    member private _.CheckAlive() =
        if constructedParameters |> Array.exists (fun p -> p.IsInvalid) then
            raise (System.ObjectDisposedException(name, "The block (or its field module) has been disposed: its parameters' native memory is gone."))

    /// The block is alive and x has its field's dtype (Internal.TensorOps.checkInputDtype), before any solve.
    member private m.CheckInput(x: torch.Tensor) =
        m.CheckAlive()
        Internal.TensorOps.checkInputDtype "The block" (vectorField.parameters() |> Seq.map (fun p -> p :> torch.Tensor)) x

    /// The problem the block solves from x: the field told the depth and x, the module's parameters (and x when the
    /// field reads it and it requires grad) declared for adjoints, the running loss attached.
    member m.Problem(x: torch.Tensor, outputTimes: float[]) : OdeProblem =
        if isNull x then raise (System.ArgumentNullException("x"))
        m.CheckInput x
        let field = ModuleField.create vectorField (if dataControlled then x else null)
        let parameters =
            [| yield! vectorField.parameters() |> Seq.map (fun p -> p :> torch.Tensor)
               if dataControlled && x.requires_grad then yield x |]
        let problem = OdeProblem.create field x outputTimes |> OdeProblem.withParameters parameters
        let problem =
            if m.Backend = FieldBackendChoice.Auto && not dataControlled then OdeProblem.withFieldBackend (FieldBackend.forModule vectorField) problem
            else problem
        let loss =
            match integralLoss, m.Regulariser |> Option.map (fun r -> r field) with
            | Some l, Some r -> Some(fun t z -> Internal.TensorOps.plus (l t z) (r t z))
            | Some l, None | None, Some l -> Some l
            | None, None -> None
        match loss with
        | Some l -> OdeProblem.withIntegralLoss l problem
        | None -> problem

    member private m.Solve(problem: OdeProblem) =
        let solution = Ode.solveWithOptions { Threads = m.Threads } sensitivity problem solver control
        last <- solution.Statistics
        lastBackward <- solution.Backward
        solution

    /// Solves from x and returns the state at every time of `outputTimes` (and the running loss's integral).
    member m.Trajectory(x: torch.Tensor, outputTimes: float[]) : OdeSolution = m.Solve(m.Problem(x, outputTimes))

    /// Solves from x with the output times given as a 1-D tensor, so adjoint sensitivities return dL/dtimes into it.
    member m.Trajectory(x: torch.Tensor, timeTensor: torch.Tensor) : OdeSolution =
        if isNull timeTensor then raise (System.ArgumentNullException("timeTensor"))
        let problem = m.Problem(x, times) |> OdeProblem.withTimeTensor timeTensor
        m.Solve problem

    /// Solves from x and returns the state at every time of the block's grid.
    member m.Trajectory(x: torch.Tensor) : OdeSolution = m.Trajectory(x, times)

    /// Solves from x like Trajectory, by autograd through the solver, with a status per sample (Rows.trySolveWith):
    /// samples (rows of x) whose solve blows up or drives the step size to underflow are marked failed with the time
    /// (their states NaN after it), and the others are solved again without them. Not for a block with a running
    /// loss or a regulariser (their integral sums over the samples).
    member m.TryTrajectory(x: torch.Tensor, outputTimes: float[]) : Rows.RowsSolution =
        if isNull x then raise (System.ArgumentNullException("x"))
        if x.dim() < 1L then raise (System.ArgumentException($"TryTrajectory needs a batch [N, ...]; got shape {Internal.TensorOps.shapeText x}.", "x"))
        let count = int x.shape[0]
        let build (rows: int64[]) =
            let input =
                if rows.Length = count then x
                else (use index = torch.tensor(rows, device = x.device) in x.index_select(0L, index))
            m.Problem(input, outputTimes)
        let solution = Rows.trySolveWith build count solver control
        last <- solution.Statistics
        lastBackward <- BackwardStatistics()
        solution

    /// TryTrajectory at every time of the block's grid.
    member m.TryTrajectory(x: torch.Tensor) : Rows.RowsSolution = m.TryTrajectory(x, times)

    /// z(S) and ∫ l(s, z(s)) ds (a 0-dim tensor). Fails when the block was made without a running loss.
    member m.ForwardWithIntegral(x: torch.Tensor) : torch.Tensor * torch.Tensor =
        if integralLoss.IsNone && m.Regulariser.IsNone then
            raise (System.InvalidOperationException("ForwardWithIntegral needs a block with a running loss (integralLoss) or a regulariser."))
        let solution = m.Trajectory(x)
        let final = solution.Final
        solution.States.Dispose()
        final, solution.Integral.Value

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// z(S): the state at the last time of the grid.
    override m.forward(x: torch.Tensor) =
        use solution = m.Trajectory(x)
        solution.Final
