namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// The adaptive-depth Neural ODE (Massaroli et al. 2020, §4.3): each input gets its own depth S(x) > 0 from a
/// learned module g_ω, S(x) = softplus(g_ω(x)) + minDepth, and the block returns z_i(S(x_i)) of
/// dz/ds = f(s, x, z), z(0) = x. The batch is solved at once by rescaling depth per sample (Spans): s = S(x) τ,
/// τ ∈ [0, 1], dz/dτ = S(x) f(S(x) τ, x, z); ω is trained through the end-time gradient, which the rescaling turns into
/// an ordinary parameter gradient (any sensitivity). Depth-aware modules in the field must take per-sample depths
/// (ISampleDepthAware, e.g. DepthCat); data-controlled ones get x.
type AdaptiveDepthModel(name: string, vectorField: Module<torch.Tensor, torch.Tensor>, depth: Module<torch.Tensor, torch.Tensor>,
                        solver: ButcherTableau, control: StepControl, sensitivity: Sensitivity, minDepth: float) as this =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    do
        if isNull vectorField then raise (System.ArgumentNullException("vectorField"))
        if isNull depth then raise (System.ArgumentNullException("depth"))
        if System.Double.IsNaN minDepth || System.Double.IsInfinity minDepth || minDepth < 0.0 then
            raise (System.ArgumentOutOfRangeException("minDepth", minDepth, $"minDepth must be a finite number ≥ 0; got {minDepth}."))
        StepControl.validate control
        // libtorch's float32 convolutions are wrong on some CPUs unless oneDNN is off (Native/OneDnnCheck.fs).
        Native.OneDnnCheck.ensureCorrect () |> ignore
        this.register_module("vector_field", vectorField)
        this.register_module("depth", depth)
    // Refuses, at construction, a field whose depth dependence cannot be per sample.
    do ModuleField.createPerSample vectorField null |> ignore
    let controlled = ModuleField.dataControlled vectorField
    let mutable last = SolveStatistics.Zero
    let mutable lastBackward = BackwardStatistics()

    /// A model named "adaptive_depth" with gradients by autograd and depths of at least 0.
    new(vectorField, depth, solver, control) =
        new AdaptiveDepthModel("adaptive_depth", vectorField, depth, solver, control, Sensitivity.Autograd, 0.0)

    /// A model named "adaptive_depth".
    new(vectorField, depth, solver, control, sensitivity, minDepth) =
        new AdaptiveDepthModel("adaptive_depth", vectorField, depth, solver, control, sensitivity, minDepth)

    /// The vector field module f.
    member _.VectorField = vectorField
    /// The depth module g_ω (S(x) = softplus(g_ω(x)) + minDepth).
    member _.DepthModule = depth
    interface ISolveStatistics with
        member _.LastStatistics = last
        member _.LastBackwardStatistics = lastBackward

    /// Statistics of the most recent forward solve (in rescaled depth τ).
    member _.LastStatistics = last
    /// Statistics of the most recent backward solve (adjoint sensitivities).
    member _.LastBackwardStatistics = lastBackward

    /// S(x) = softplus(g_ω(x)) + minDepth, one depth per sample, shape [N].
    member _.Depths(x: torch.Tensor) : torch.Tensor =
        if isNull x then raise (System.ArgumentNullException("x"))
        if x.IsInvalid then raise (System.ObjectDisposedException("x", "The adaptive-depth model got a disposed input."))
        if x.dim() < 1L then raise (System.ArgumentException($"The adaptive-depth model needs a batched input [N, ...]; got shape {Internal.TensorOps.shapeText x}.", "x"))
        use g =
            try depth.forward x
            with e -> raise (System.InvalidOperationException($"The depth module failed on x of shape {Internal.TensorOps.shapeText x} ({x.dtype}): {e.Message.Split('\n').[0]}", e))
        if g.numel() <> x.shape[0] then
            raise (System.ArgumentException($"The depth module must return one number per sample ([N] or [N, 1]); for a batch of {x.shape[0]} it returned shape {Internal.TensorOps.shapeText g}.", "depth"))
        use flat = g.reshape(-1L)
        match RowDiagnosis.nonFiniteRows flat with
        | [||] -> ()
        | rows ->
            let shown = rows |> Array.truncate 10 |> Array.map string |> String.concat ", "
            raise (System.InvalidOperationException($"The depth module returned NaN or Inf for sample(s) [{shown}] of x (shape {Internal.TensorOps.shapeText x}): no depth S(x) can be taken from it. Check the depth module and those samples."))
        use soft = functional.softplus(flat)
        Internal.TensorOps.addConstant soft minDepth

    /// The states at the fractions τ_k of every sample's depth (a grid from 0 to 1), and the depths S(x).
    member _.Trajectory(x: torch.Tensor, fractions: float[]) : OdeSolution * torch.Tensor =
        if isNull x then raise (System.ArgumentNullException("x"))
        let s = this.Depths x
        // The start depths and S are read again by an adjoint's backward solve: they are not freed here but left to
        // the caller's dispose scope, like the output.
        let zero = torch.zeros([| x.shape[0] |], dtype = s.dtype, device = s.device)
        let field: Spans.SampleVectorField = ModuleField.createPerSample vectorField x
        let parameters =
            [| yield! vectorField.parameters() |> Seq.map (fun p -> p :> torch.Tensor)
               if not controlled.IsEmpty && x.requires_grad then yield x |]
        let solution = Spans.solve field x zero s fractions parameters sensitivity solver control
        last <- solution.Statistics
        lastBackward <- solution.Backward
        solution, s

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// z_i(S(x_i)) for every sample.
    override m.forward(x: torch.Tensor) =
        let solution, _ = m.Trajectory(x, [| 0.0; 1.0 |])
        use _ = solution
        solution.Final
