/// Per-sample integration spans: sample i of a batch is integrated over its own span [t0_i, t1_i], all in one solve.
/// Time is rescaled per sample, t_i(τ) = t0_i + τ (t1_i − t0_i) with τ ∈ [0, 1], so
///   dx_i/dτ = (t1_i − t0_i) · f(t_i(τ), x_i),
/// and the whole batch shares one solver grid in τ (Massaroli et al. 2020, §4.3, adaptive depth, is the case
/// t0 = 0, t1 = S(x)). Gradients reach t0 and t1 by any sensitivity — by the chain rule through the rescaling, which
/// is the end-time gradient dL/dt1_i = λ_i(t1)ᵀ f(t1_i, x_i(t1)) (+ l) of the spec's Leibniz rule.
module NeuralOde.Core.Spans

open System
open TorchSharp
open NeuralOde.Core.Internal

/// A vector field with one time per sample: f(t, x), t of shape [N] for a batch x of shape [N, ...].
type SampleVectorField = torch.Tensor -> torch.Tensor -> torch.Tensor

let private checkSpanTensor (argument: string) (t: torch.Tensor) (x0: torch.Tensor) =
    let batch = x0.shape[0]
    if isNull t then raise (ArgumentNullException(argument))
    if t.IsInvalid then raise (ObjectDisposedException(argument, $"{argument} has been disposed."))
    if t.device_type <> x0.device_type || t.device_index <> x0.device_index then
        raise (ArgumentException($"{argument} must be on x0's device {x0.device}; got {t.device}.", argument))
    if t.dim() <> 1L || t.shape[0] <> batch then
        raise (ArgumentException($"{argument} must hold one time per sample, shape [{batch}]; got shape {TensorOps.shapeText t}.", argument))
    if not (torch.is_floating_point t) then
        raise (ArgumentException($"{argument} must be a floating-point tensor; got dtype {t.dtype}.", argument))
    TensorOps.hostValues t |> Array.iteri (fun i v ->
        if Double.IsNaN v || Double.IsInfinity v then
            raise (ArgumentException($"{argument}[{i}] is {v}; every time must be finite.", argument)))

/// The problem in rescaled time τ ∈ [0, 1] whose outputs at the fractions τ_k (a grid from 0 to 1) are the states
/// x_i(t0_i + τ_k (t1_i − t0_i)). `parameters` are the tensors f depends on (for adjoints); t0 and t1 join them when
/// they require grad. A sample with t0_i = t1_i stays at its initial state. Like x0 and the parameters, t0 and t1 must
/// stay alive until the backward pass has run: an adjoint's backward solve evaluates the rescaled field again.
let problem (f: SampleVectorField) (x0: torch.Tensor) (t0: torch.Tensor) (t1: torch.Tensor) (fractions: float[])
            (parameters: seq<torch.Tensor>) : OdeProblem =
    if isNull (box f) then raise (ArgumentNullException("f"))
    if isNull x0 then raise (ArgumentNullException("x0"))
    if x0.IsInvalid then raise (ObjectDisposedException("x0", "x0 has been disposed."))
    if x0.dim() < 1L then raise (ArgumentException($"x0 must be batched, shape [N, ...]; got shape {TensorOps.shapeText x0}.", "x0"))
    let batch = x0.shape[0]
    checkSpanTensor "t0" t0 x0
    checkSpanTensor "t1" t1 x0
    Guard.timeGrid "fractions" fractions |> ignore
    if fractions[0] <> 0.0 || fractions[fractions.Length - 1] <> 1.0 then
        raise (ArgumentException($"fractions must run from 0 to 1 (the start and end of every sample's span); got {fractions[0]} to {fractions[fractions.Length - 1]}.", "fractions"))
    let view = Array.init (int (x0.dim())) (fun i -> if i = 0 then batch else 1L)
    let field: VectorField =
        fun tau x ->
            // Made per evaluation, freed by the evaluation's scope: the width, the per-sample times, the scaled output.
            let width = (use w = t1.sub(t0) in w.to_type(x.dtype))
            let times = TensorOps.addScaled t0 width tau
            let dx = f times x
            use w = width.reshape(view)
            dx.mul(w)
    let extra = [| t0; t1 |] |> Array.filter (fun t -> t.requires_grad)
    OdeProblem.create field x0 fractions
    |> OdeProblem.withParameters (Seq.append parameters extra)

/// Solves every sample over its own span in one batched solve (see `problem`), with gradients by `sensitivity`
/// to x0, t0, t1 and `parameters`. The states come at the fractions of each span, [fractions.Length; ...x0.shape].
let solve (f: SampleVectorField) (x0: torch.Tensor) (t0: torch.Tensor) (t1: torch.Tensor) (fractions: float[])
          (parameters: seq<torch.Tensor>) (sensitivity: Sensitivity) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    Ode.solveWith sensitivity (problem f x0 t0 t1 fractions parameters) solver control

/// Solves like `solve` by autograd, with a status per sample (Rows.trySolveWith): a sample whose span blows up or
/// drives the step size to underflow is marked failed with the failure and its time (its states after that are NaN),
/// and the other samples are solved again without it.
let trySolveRows (f: SampleVectorField) (x0: torch.Tensor) (t0: torch.Tensor) (t1: torch.Tensor) (fractions: float[])
                 (solver: ButcherTableau) (control: StepControl) : Rows.RowsSolution =
    let whole = problem f x0 t0 t1 fractions Seq.empty
    let count = int x0.shape[0]
    let build (rows: int64[]) =
        if rows.Length = count then whole
        else
            use index = torch.tensor(rows, device = x0.device)
            let pick (t: torch.Tensor) = t.index_select(0L, index)
            problem f (pick x0) (pick t0) (pick t1) fractions Seq.empty
    Rows.trySolveWith build count solver control
