namespace NeuralOde.Core

open TorchSharp
open NeuralOde.Core.Internal

/// A vector field f(t, x): the time and the batched state (a tensor of any shape) give dx/dt, a tensor of the same
/// shape, dtype and device as x.
type VectorField = float -> torch.Tensor -> torch.Tensor

/// A running loss l(t, x): a 0-dim tensor (summed over the batch) whose integral over the span is part of the loss
/// (Massaroli et al. 2020, Proposition 1).
type IntegralLoss = float -> torch.Tensor -> torch.Tensor

/// Vector–Jacobian products of a vector field known in closed form (a symbolic field's compiled derivatives):
/// `Apply t x a` returns aᵀ ∂f/∂x (shaped like x) and aᵀ ∂f/∂θ for each tensor of `Parameters` (shaped like it), as
/// new tensors, without autograd. The adjoint sensitivities use it in place of torch.autograd.grad.
type VectorJacobianProduct =
    { /// The tensors θ the products are for, in the order `Apply` returns them; f depends on no other tensor.
      Parameters: torch.Tensor[]
      /// (t, x, a) ↦ (aᵀ ∂f/∂x, [aᵀ ∂f/∂θ_i]).
      Apply: float -> torch.Tensor -> torch.Tensor -> torch.Tensor * torch.Tensor[]
      /// Optionally, f(t, x) computed together with the products (what they share computed once): (t, x, a) ↦
      /// (f(t, x), aᵀ ∂f/∂x, [aᵀ ∂f/∂θ_i]). The adjoints then take f from it instead of evaluating f again.
      WithValue: (float -> torch.Tensor -> torch.Tensor -> torch.Tensor * torch.Tensor * torch.Tensor[]) option }

/// An initial value problem dx/dt = f(t, x), x(times[0]) = x0, whose solution is wanted at every point of `Times`.
/// It is data only: how it is solved (solver, step control, sensitivity) is chosen when it is solved.
type OdeProblem =
    { /// The vector field f(t, x).
      VectorField: VectorField
      /// The initial state at Times[0]; its dtype and device decide those of the whole solve.
      X0: torch.Tensor
      /// Output times, strictly monotone; Times[0] is the start, the last is the end. Decreasing means backward in time.
      Times: float[]
      /// The tensors f depends on whose gradients adjoint methods compute (typically a module's parameters). Autograd
      /// through the solver finds them by itself and ignores this.
      Parameters: torch.Tensor[]
      /// An optional running loss l(t, x) integrated over the span; its integral is returned with the solution.
      IntegralLoss: IntegralLoss option
      /// The output times as a 1-D tensor, when gradients with respect to the times are wanted (adjoint methods).
      TimeTensor: torch.Tensor option
      /// f's vector–Jacobian products in closed form, when known: the adjoint methods then take no autograd graph
      /// of f (the running loss, if any, is still differentiated by autograd).
      VectorJacobianProduct: VectorJacobianProduct option
      /// A backend that can evaluate the field faster than calling it (a compiled MLP), when one is attached: the
      /// solve uses it where it can and says which ran in its statistics.
      FieldBackend: IFieldBackend option
      /// A split f = f_E + f_I into a non-stiff part f_E and a stiff part f_I (OdeProblem.createSplit), when given: the
      /// IMEX solvers (kenCarp3/4/5) treat f_E explicitly and f_I implicitly; every other solver solves the sum, which
      /// is VectorField.
      Split: (VectorField * VectorField) option }

    /// The start time.
    member p.T0 = p.Times[0]
    /// The end time.
    member p.T1 = p.Times[p.Times.Length - 1]
    /// +1.0 when integrating forward in time, -1.0 backward.
    member p.Direction = if p.T1 > p.T0 then 1.0 else -1.0

/// Building problems: `create` / `onSpan`, then `withParameters`, `withIntegralLoss`, `withTimeTensor`.
module OdeProblem =
    /// The sum fields createSplit built (weakly held: a problem's field keeps its entry).
    let private splitSums = System.Runtime.CompilerServices.ConditionalWeakTable<obj, obj>()

    /// Builds a problem, checking the time grid and the initial state (a floating-point tensor).
    let create (f: VectorField) (x0: torch.Tensor) (times: float[]) : OdeProblem =
        if isNull (box f) then raise (System.ArgumentNullException("f"))
        if isNull x0 then raise (System.ArgumentNullException("x0"))
        if x0.IsInvalid then raise (System.ObjectDisposedException("x0", "x0 has been disposed: its native memory is gone. Keep it alive until the solve (and its backward pass) is done."))
        Guard.timeGrid "times" times |> ignore
        if not (torch.is_floating_point x0) then
            raise (System.ArgumentException($"x0 must be a real floating-point tensor (float32 or float64; float16 and bfloat16 work with fixed steps and loose tolerances); got dtype {x0.dtype}.", "x0"))
        // Step sizes and times become scalars of the state's dtype: a span float16 cannot hold would make libtorch
        // raise (untyped) mid-solve. Refused here, by name.
        let largest = if x0.dtype = torch.float16 then 65504.0 elif x0.dtype = torch.bfloat16 then 3.38e38 else infinity
        let extent = max (abs (times[times.Length - 1] - times[0])) (times |> Array.map abs |> Array.max)
        if extent > largest then
            raise (System.ArgumentException($"The times reach {extent:G4}, beyond what a {x0.dtype} state can hold (largest {largest:G5}); rescale time or use float32.", "times"))
        { VectorField = f; X0 = x0; Times = Array.copy times; Parameters = [||]; IntegralLoss = None; TimeTensor = None; VectorJacobianProduct = None; FieldBackend = None; Split = None }

    /// Builds a split problem dx/dt = f_E(t, x) + f_I(t, x) (Kennedy & Carpenter 2003): the IMEX solvers (kenCarp3/4/5)
    /// treat the non-stiff part f_E explicitly and solve the stiff part f_I by Newton iterations on its Jacobian alone;
    /// every other solver (explicit, Kværnø, the adjoints) solves the sum, the problem's VectorField (events keep the
    /// split). Each part's output is checked as the field's is (shape, dtype, device, failures named with the time).
    let createSplit (nonStiff: VectorField) (stiff: VectorField) (x0: torch.Tensor) (times: float[]) : OdeProblem =
        if isNull (box nonStiff) then raise (System.ArgumentNullException("nonStiff"))
        if isNull (box stiff) then raise (System.ArgumentNullException("stiff"))
        let sum: VectorField = fun t x ->
            TensorOps.plus (FieldCheck.call FieldCheck.nonStiff nonStiff t x) (FieldCheck.call FieldCheck.stiff stiff t x)
        let problem = { create sum x0 times with Split = Some(nonStiff, stiff) }
        // The field as the record holds it (a let-bound lambda becomes a new closure object at each use).
        splitSums.AddOrUpdate(box problem.VectorField, null)
        problem

    /// A split problem's parts for the IMEX stages, or None for a problem that is not split. Raises ArgumentException
    /// when the problem's VectorField is not a sum createSplit built (a record copy `{ p with VectorField = g }` after
    /// createSplit), which the IMEX stages would otherwise solve in place of g without a word.
    let internal splitParts (problem: OdeProblem) =
        match problem.Split with
        | None -> None
        | Some parts ->
            match splitSums.TryGetValue(box problem.VectorField) with
            | true, _ -> Some parts
            | _ ->
                raise (System.ArgumentException("The problem's VectorField is not the sum of its Split parts (was it replaced after OdeProblem.createSplit?). Build the split problem anew with OdeProblem.createSplit nonStiff stiff.", "problem"))

    /// A problem on the span [t0, t1] with outputs at its two ends.
    let onSpan (f: VectorField) (x0: torch.Tensor) (t0: float) (t1: float) = create f x0 [| t0; t1 |]

    /// Declares the tensors f depends on (for adjoint methods). A tensor listed twice (a module's parameters
    /// concatenated with themselves: the same object) is kept once: each listing would otherwise receive the whole gradient, and the
    /// optimiser would see it doubled.
    let withParameters (parameters: seq<torch.Tensor>) (problem: OdeProblem) =
        if isNull parameters then raise (System.ArgumentNullException("parameters"))
        let distinct = ResizeArray<torch.Tensor>()
        parameters |> Seq.iteri (fun i p ->
            if isNull p then raise (System.ArgumentException($"parameters[{i}] is null.", "parameters"))
            if p.IsInvalid then raise (System.ObjectDisposedException($"parameters[{i}]", "A parameter was disposed; dispose modules and their parameters only after the solve and its backward pass."))
            if not (distinct.Exists(fun q -> obj.ReferenceEquals(p, q))) then distinct.Add p)
        { problem with Parameters = distinct.ToArray() }

    /// Adds a running loss l(t, x) whose integral over the span is computed with the solution.
    let withIntegralLoss (loss: IntegralLoss) (problem: OdeProblem) =
        if isNull (box loss) then raise (System.ArgumentNullException("integralLoss"))
        { problem with IntegralLoss = Some loss }

    /// Gives f's vector–Jacobian products in closed form, for the adjoint methods (autograd through the solver does
    /// not use them). The problem's parameters that the products do not list get zero gradient from f.
    let withVectorJacobianProduct (vjp: VectorJacobianProduct) (problem: OdeProblem) =
        if isNull (box vjp.Apply) then raise (System.ArgumentNullException("vectorJacobianProduct"))
        if isNull vjp.Parameters then raise (System.ArgumentNullException("vectorJacobianProduct.Parameters"))
        { problem with VectorJacobianProduct = Some vjp }

    /// Attaches a field backend (FieldBackends.forModule): solves use it where they can, with the same steps,
    /// evaluations and results (to rounding) as calling the field.
    let withFieldBackend (backend: IFieldBackend) (problem: OdeProblem) =
        if isNull (box backend) then raise (System.ArgumentNullException("backend"))
        { problem with FieldBackend = Some backend }

    /// Takes the output times from a 1-D tensor, so adjoint methods return dL/dtimes into it.
    let withTimeTensor (times: torch.Tensor) (problem: OdeProblem) =
        if isNull times then raise (System.ArgumentNullException("timeTensor"))
        if times.IsInvalid then raise (System.ObjectDisposedException("timeTensor", "The time tensor has been disposed."))
        if times.dim() <> 1L then
            raise (System.ArgumentException("The time tensor must be 1-D.", "times"))
        let values = TensorOps.hostValues times
        Guard.timeGrid "times" values |> ignore
        { problem with Times = values; TimeTensor = Some times }
