namespace NeuralOde.Core

open System
open TorchSharp
open type TorchSharp.torch.nn

/// A continuous normalizing flow (Chen et al. 2018, §4 and Theorem 1; Grathwohl et al. 2019, FFJORD; the
/// conditional, data-controlled flow of Massaroli et al. 2020, §6.2). Data x at t0 flow to the base at t1 along
/// dz/dt = f(t, z); the instantaneous change of variables d log p(z(t))/dt = −tr(∂f/∂z) gives
///   log p(x) = log N(z(t1); 0, I) + Δ(t1),   Δ(t1) = ∫_{t0}^{t1} tr(∂f/∂z(t, z(t))) dt,
/// computed by solving the augmented state [z; Δ] of shape [N, d + 1] from [x; 0]. The base distribution is the
/// standard normal N(0, I) in d dimensions. The trace is exact (d vector–Jacobian products) or Hutchinson's
/// estimate, whose probes are drawn once per solve. The field is a module evaluated through ModuleField, so
/// depth-aware layers get the time and data-controlled ones (e.g. ConditionCat) the condition. Gradients reach the
/// field's parameters by the chosen sensitivity; the adjoints see the same probes in their backward solve. A field
/// whose width is not `dimension` raises ArgumentException ("field"): a Sequential whose first or last affine layer
/// shows it when the flow is built, any other field before its first solve, naming the shapes.
type Cnf(name: string, field: Module<torch.Tensor, torch.Tensor>, dimension: int, trace: TraceEstimator,
         solver: ButcherTableau, control: StepControl, sensitivity: Sensitivity, t0: float, t1: float,
         generator: torch.Generator) as this =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    do
        if isNull field then raise (ArgumentNullException("field"))
        if dimension < 1 then
            raise (ArgumentOutOfRangeException("dimension", dimension, $"The flow's dimension d must be at least 1; got {dimension}. Give the number of features of one sample."))
        StepControl.validate control
        // libtorch's float32 convolutions are wrong on some CPUs unless oneDNN is off (Native/OneDnnCheck.fs).
        Native.OneDnnCheck.ensureCorrect () |> ignore
        Internal.Guard.timeGrid "span" [| t0; t1 |] |> ignore
        // A Sequential's first and last affine layers are read here; the rest is checked at the first solve (checkWidth).
        for side, width in [ "takes", fst (FieldShape.widths field); "returns", snd (FieldShape.widths field) ] do
            match width with
            | Some w when w <> int64 dimension ->
                raise (ArgumentException($"The field {side} {w} features, but the flow's dimension is {dimension}: a flow's field maps d features to d. Build the field with width {dimension} or the flow with the field's width.", "field"))
            | _ -> ()
        this.register_module("vector_field", field)
    let d = int64 dimension
    let mutable last = SolveStatistics.Zero
    let mutable lastBackward = BackwardStatistics()
    /// The tensors the solve's field depends on, for adjoints: the field's parameters and, when it requires grad,
    /// the condition (an embedding before the flow is trained through it, as by autograd).
    let solveParameters (condition: torch.Tensor) =
        [| yield! field.parameters() |> Seq.map (fun p -> p :> torch.Tensor)
           if not (isNull condition) && condition.requires_grad then yield condition |]
    let halfLog2Pi = 0.5 * log (2.0 * Math.PI)
    let checkBatch (argument: string) (x: torch.Tensor) =
        if isNull x then raise (ArgumentNullException(argument))
        if x.dim() <> 2L || x.shape[1] <> d then
            raise (ArgumentException($"{argument} must be a batch [N, {d}] of the flow's dimension; got shape {Internal.TensorOps.shapeText x}. Flatten samples to vectors, or build the flow with dimension = their length.", argument))
        if not (torch.is_floating_point x) then
            raise (ArgumentException($"{argument} must be a floating-point tensor (float32 or float64); got {x.dtype}.", argument))
        match RowDiagnosis.nonFiniteRows x with
        | [||] -> ()
        | rows ->
            let shown = (rows |> Array.truncate 10 |> Array.map string |> String.concat ", ") + (if rows.Length > 10 then ", ..." else "")
            raise (ArgumentException($"{argument} (shape {Internal.TensorOps.shapeText x}) holds NaN or Inf in row(s) [{shown}]; every sample must be finite.", argument))

    /// The field as f(t, z), told the condition (checked against the batch and the field's data-controlled layers).
    let vectorField (rows: int64) (condition: torch.Tensor) : VectorField =
        let controlled = ModuleField.dataControlled field
        if not (isNull condition) then
            if controlled.IsEmpty then
                raise (ArgumentException("A condition was given but the field has no data-controlled layer to read it: put a ConditionCat (or another IDataControlled module) in the field, or give no condition.", "condition"))
            if condition.dim() < 1L || condition.shape[0] <> rows then
                raise (ArgumentException($"The condition must have one row per sample ({rows}); got shape {Internal.TensorOps.shapeText condition}.", "condition"))
        ModuleField.create field condition

    let mutable widthChecked = false
    /// Once per flow, before its first generic solve: f(t, x) evaluated outside the solver, so a field of another
    /// width is named with the shapes (FieldShape.evaluate) rather than wrapped in the solver's OdeSolveException.
    let checkWidth (f: VectorField) (t: float) (x: torch.Tensor) =
        if not widthChecked then
            use _ = torch.no_grad()
            use scope = torch.NewDisposeScope()
            FieldShape.evaluate $"A flow of dimension {d}" "field" f t x |> ignore
            widthChecked <- true

    /// The default name "cnf", t0 = 0, t1 = 1 and the global random generator for Hutchinson's probes.
    new(field, dimension, trace, solver, control, sensitivity) =
        new Cnf("cnf", field, dimension, trace, solver, control, sensitivity, 0.0, 1.0, null)

    /// The default name "cnf", t0 = 0, t1 = 1, gradients by autograd through the solver.
    new(field, dimension, trace, solver, control) =
        new Cnf("cnf", field, dimension, trace, solver, control, Sensitivity.Autograd, 0.0, 1.0, null)

    /// The vector field module f.
    member _.VectorField = field
    /// The dimension d of a sample.
    member _.Dimension = dimension
    /// How tr(∂f/∂z) is computed.
    member _.Trace = trace
    /// The solver (Butcher tableau).
    member _.Solver = solver
    /// The step control.
    member _.Control = control
    /// How gradients are computed.
    member _.Sensitivity = sensitivity
    /// The span (t0, t1): data at t0, the base distribution at t1.
    member _.Span = (t0, t1)
    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// Which backend evaluates the field (default Auto): Auto compiles a field that is a Sequential of Linear (and
    /// GalLinear) layers with tanh, sigmoid, ReLU or softplus, for an unconditional float32 or float64 CPU batch: Encode
    /// (and LogProbability) then solves the augmented system with the trace by forward-mode tangents and its adjoint by
    /// their reverse (second derivatives by hand), and Decode the plain flow, on host buffers, wherever the sensitivity
    /// allows (the adjoints, or no gradient wanted): the tensor solve's steps, probes and gradients, to rounding.
    /// Module always evaluates the module with autograd. LastStatistics.Backend says which ran.
    member val Backend = FieldBackendChoice.Auto with get, set
    /// Threads a compiled backend splits the batch over (None: libtorch's intra-op count at each solve).
    member val Threads: int option = None with get, set

    /// Records the statistics of a solve.
    member private _.Record(solution: OdeSolution) =
        last <- solution.Statistics
        lastBackward <- solution.Backward

    interface ISolveStatistics with
        member _.LastStatistics = last
        member _.LastBackwardStatistics = lastBackward

    /// Statistics of the most recent solve (Encode, LogProbability or Sample).
    member _.LastStatistics = last
    /// Statistics of the backward solve of the most recent solve, once backward() has run through it (adjoint
    /// sensitivities only; zero for autograd).
    member _.LastBackwardStatistics = lastBackward

    /// log N(z; 0, I) = −‖z‖²/2 − (d/2) log 2π per sample [N]: the log-density of the base distribution.
    member _.BaseLogProbability(z: torch.Tensor) : torch.Tensor =
        checkBatch "z" z
        use scope = torch.NewDisposeScope()
        let quadratic = Internal.TensorOps.scale (z.square().sum(1L)) -0.5
        (Internal.TensorOps.addConstant quadratic (-(float d) * halfLog2Pi)).MoveToOuterDisposeScope()

    /// Solves the augmented system d/dt [z; Δ] = [f(t, z); tr(∂f/∂z)] from [x; 0] at t0 to t1 and returns z(t1)
    /// [N, d] and Δ(t1) = ∫ tr(∂f/∂z) dt [N] (Grathwohl et al. 2019, eq. 4). `condition` [N, k] (or null) is handed to
    /// the field's data-controlled layers.
    member m.Encode(x: torch.Tensor, condition: torch.Tensor) : torch.Tensor * torch.Tensor =
        checkBatch "x" x
        let f = vectorField x.shape[0] condition
        checkWidth f t0 x
        let seed = match trace with Hutchinson _ -> Trace.drawSeed generator | Exact -> 0UL
        // A field with a closed-form trace (a symbolic field) gives the exact trace at about the cost of one forward.
        let closedForm = match trace, box field with Exact, (:? IExactTrace as e) -> Some e | _ -> None
        let augmented: VectorField = fun t y ->
            use scope = torch.NewDisposeScope()
            let z = y.narrow(1L, 0L, d)
            let fz, tr =
                match closedForm with
                | Some e ->
                    let fz, tr = e.ValueAndTrace(t, z, condition)
                    if isNull fz || fz.shape <> z.shape || isNull tr || tr.shape <> [| z.shape[0] |] then
                        raise (ArgumentException($"The field's closed-form trace at t = {t} must give f shaped like z and one trace per sample.", "field"))
                    fz, tr
                | None -> Trace.evaluate trace seed f t z
            torch.cat([| fz; tr.unsqueeze(1L) |], 1L).MoveToOuterDisposeScope()
        // The solve runs in the caller's dispose scope, not one of ours: an adjoint's autograd function keeps
        // tensors made during the solve (TorchSharp's cache of its outputs, and its input y0) for the backward pass,
        // which runs after this call returns. The states are freed here; z and Δ are views that keep what they need.
        let y0 = (use zero = torch.zeros([| x.shape[0]; 1L |], dtype = x.dtype, device = x.device)
                  torch.cat([| x; zero |], 1L))
        let problem = OdeProblem.create augmented y0 [| t0; t1 |] |> OdeProblem.withParameters (solveParameters condition)
        // The exact trace keeps a tangent per dimension for every layer: compiled for small d only.
        let compiledTrace = match trace, box field with Exact, (:? IExactTrace) -> false | Exact, _ -> d <= 16L | _ -> true
        let problem =
            if m.Backend = FieldBackendChoice.Auto && isNull condition && compiledTrace then
                OdeProblem.withFieldBackend (FieldBackend.forFlow field trace seed) problem
            else problem
        let solution = Ode.solveWithOptions { Threads = m.Threads } sensitivity problem solver control
        m.Record solution
        use states = solution.States
        use scope = torch.NewDisposeScope()
        let final = solution.Final
        let z = final.narrow(1L, 0L, d)
        let delta = final.select(1L, d)
        z.MoveToOuterDisposeScope(), delta.MoveToOuterDisposeScope()

    /// z(t1) and Δ(t1) of an unconditional flow.
    member m.Encode(x: torch.Tensor) = m.Encode(x, null)

    /// log p(x) = log N(z(t1); 0, I) + Δ(t1) per sample [N] (Chen et al. 2018, eq. 4 integrated; Grathwohl et al.
    /// 2019, eq. 4), conditioned on `condition` [N, k] (null for none; Massaroli et al. 2020, §6.2).
    member m.LogProbability(x: torch.Tensor, condition: torch.Tensor) : torch.Tensor =
        let z, delta = m.Encode(x, condition)
        use z = z
        use delta = delta
        use scope = torch.NewDisposeScope()
        (Internal.TensorOps.plus (m.BaseLogProbability(z)) delta).MoveToOuterDisposeScope()

    /// log p(x) per sample [N] of an unconditional flow.
    member m.LogProbability(x: torch.Tensor) = m.LogProbability(x, null)

    /// x = z(t0) from z = z(t1) [N, d]: the flow solved backward from t1 to t0 (no trace needed), conditioned on
    /// `condition` [N, k] (null for none). The inverse of Encode's z, up to the solver's error.
    member m.Decode(z: torch.Tensor, condition: torch.Tensor) : torch.Tensor =
        checkBatch "z" z
        let f = vectorField z.shape[0] condition
        checkWidth f t1 z
        // In the caller's scope, like Encode's solve (an adjoint keeps tensors made here for the backward pass).
        let problem = OdeProblem.create f z [| t1; t0 |] |> OdeProblem.withParameters (solveParameters condition)
        let problem =
            if m.Backend = FieldBackendChoice.Auto && isNull condition then OdeProblem.withFieldBackend (FieldBackend.forModule field) problem
            else problem
        let solution = Ode.solveWithOptions { Threads = m.Threads } sensitivity problem solver control
        m.Record solution
        use states = solution.States
        solution.Final

    /// Samples x from base points z [N, d] of an unconditional flow (Decode without condition).
    member m.Sample(z: torch.Tensor) = m.Decode(z, null)

    /// n samples: z ~ N(0, I) drawn from `sampleGenerator` (the global generator when null) with the dtype and device
    /// of the field's parameters (float32 on the CPU when it has none), then decoded. `condition` is null, one row
    /// [1, k] used for every sample, or [n, k].
    member m.Sample(n: int, condition: torch.Tensor, sampleGenerator: torch.Generator) : torch.Tensor =
        if n < 1 then raise (ArgumentOutOfRangeException("n", n, $"The number of samples must be at least 1; got {n}."))
        let dtype, device =
            match field.parameters() |> Seq.tryHead with
            | Some p -> p.dtype, p.device
            | None -> torch.float32, torch.CPU
        // z and the expanded condition stay in the caller's scope: the solve reads them, and an adjoint's backward
        // pass may read them after this call returns.
        let z =
            if device.``type`` = DeviceType.CPU then torch.randn([| int64 n; d |], dtype = dtype, generator = sampleGenerator)
            else (use host = torch.randn([| int64 n; d |], dtype = dtype, generator = sampleGenerator) in host.``to``(device))
        let condition =
            if isNull condition || condition.dim() < 1L || condition.shape[0] <> 1L || n = 1 then condition
            else condition.expand([| int64 n; -1L |])
        m.Decode(z, condition)

    /// n samples of an unconditional flow from `sampleGenerator` (the global generator when null).
    member m.Sample(n: int, sampleGenerator: torch.Generator) = m.Sample(n, null, sampleGenerator)

    /// log p(x) per sample [N] (unconditional): the module's output, so a flow composes like any module.
    override m.forward(x: torch.Tensor) = m.LogProbability(x)
