/// One step of a Rosenbrock (linearly implicit) method on tensors, in the form of Hairer & Wanner ("Solving ODEs II",
/// §IV.7, eq. (7.4')): with M = (1/(hγ)) I − J factorised once per step (torch.linalg.lu_factor, batched over the
/// Jacobian's blocks), each stage is one solve (torch.linalg.lu_solve)
/// M u_i = f(t + α_i h, y + Σ_{j<i} a_ij u_j) + Σ_{j<i} (c_ij / h) u_j + γ_i h ∂f/∂t,
/// y1 = y + Σ m_i u_i, error Σ e_i u_i. No Newton iteration: the order rests on J being the exact Jacobian at the
/// step's start, so J (and ∂f/∂t) are evaluated at every new start and kept only for retries of a rejected step.
/// ∂f/∂t is a forward difference in t (one evaluation per step): the field takes t as a float, so autograd has no
/// tangent in t to offer. The loop takes the step as Loop.Settings.Step and reads outputs inside it by cubic Hermite
/// interpolation. A singular M rejects the step under adaptive control (the loop shrinks it), up to
/// NewtonOptions.MaxFailures times; then, or at once under fixed steps, the solve fails with SingularMatrix and the time.
///
/// Gradients: when autograd records the solve (grad enabled and f(t, y) requiring grad), J is built with create_graph
/// and M's factors stay in the graph (lu_factor and lu_solve have derivatives), so backpropagation gives the gradient
/// of the discrete solution. A Jacobian of your own (NewtonOptions.Jacobian) enters as a constant.
module internal NeuralOde.Core.Implicit.RosenbrockStep

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The LU factors of M = (1/(hγ)) I − J for blocks J [B, d, d], in the caller's dispose scope and in J's graph;
/// None when M is singular or not finite.
let private factor (jacobian: Tensor) (hGamma: float) : (Tensor * Tensor) option =
    use eye = torch.eye(jacobian.shape[2], dtype = jacobian.dtype, device = jacobian.device)
    use shifted = TensorOps.scale eye (1.0 / hGamma)
    use m = TensorOps.addScaled shifted jacobian -1.0
    LuFactors.tryFactor m

/// ∂f/∂t at (t, y) by a forward difference in the direction of integration, with fy = f(t, y): the step
/// δ = √ε·max(|t|, |h|) balances truncation (∝ δ) against cancellation (∝ ε/δ), at most h so that t + δ stays in the
/// step (a field may be defined on the solve's span only).
let private timeDerivative (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (h: float) (fy: Tensor) : Tensor =
    let delta = float (sign h) * min (abs h) (sqrt LuFactors.epsilon * max (abs t) (abs h))
    let t1 = t + delta
    use f1 = f t1 y
    use difference = TensorOps.addScaled f1 fy -1.0
    TensorOps.scale difference (1.0 / (t1 - t))

/// The Rosenbrock steps of one solve, with the Jacobian and ∂f/∂t kept for retries from the same start.
/// `adaptive`: a singular matrix rejects the step (the controller shrinks it) instead of failing the solve.
type Stepper(tableau: ButcherTableau, adaptive: bool) =
    let method = tableau.Rosenbrock.Value
    let options = tableau.Newton
    let s = method.Stages
    let mutable jacobian: Tensor = null
    let mutable dfdt: Tensor = null
    let mutable lastT = nan
    let mutable lastY: Tensor = null
    let mutable failures = 0
    let mutable evaluations = 0
    let keep (old: Tensor) (t: Tensor) =
        if not (isNull old) then old.Dispose()
        t.DetachFromDisposeScope()

    /// The stages with the factors of M: the solution and the error estimate (under adaptive control).
    let stages f (t: float) (y: Tensor) (h: float) (fy: Tensor) (lu: Tensor, pivots: Tensor) (b: int64, d: int64) =
        let us = Array.zeroCreate<Tensor> s
        for i in 0 .. s - 1 do
            let fi = if i = 0 then fy else (use yi = TensorOps.combine y 1.0 method.A[i] us in f (t + method.Nodes[i] * h) yi)
            let withEarlier = TensorOps.combine fi (1.0 / h) method.C[i] us
            let rhs = if method.TimeWeights[i] = 0.0 then withEarlier else TensorOps.addScaledInPlace withEarlier dfdt (method.TimeWeights[i] * h)
            use column = rhs.reshape([| b; d; 1L |])
            use solved = torch.linalg.lu_solve(lu, pivots, column)
            us[i] <- solved.reshape(y.shape)
        let y1 = TensorOps.combine y 1.0 method.M us
        let error = if adaptive then TensorOps.weightedSum 1.0 method.E us else null
        ({ Y1 = y1; Ks = [| fy |]; Error = error; Order = 0; F1 = null }: RungeKuttaStep.StepResult<Tensor>)

    /// The Jacobian evaluations so far (one per accepted step, and per retry after a singular matrix).
    member _.JacobianEvaluations = evaluations

    /// One step of h from (t, y) with fy = f(t, y): Loop.Settings.Step.
    member _.Step (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (h: float) (fy: Tensor) : RungeKuttaStep.StepResult<Tensor> =
        let b, d = Jacobian.blocks options.Structure y
        // A new start: the last trial step was accepted. The same start: it was rejected, and J and ∂f/∂t still hold.
        if not (obj.ReferenceEquals(y, lastY) && t = lastT) then
            failures <- 0
            lastY <- y
            lastT <- t
            let recorded = torch.is_grad_enabled () && fy.requires_grad
            let j = if recorded then Jacobian.evaluateRecorded options f t y b d else Jacobian.evaluate options f t y b d
            jacobian <- keep jacobian j
            dfdt <- keep dfdt (timeDerivative f t y h fy)
            evaluations <- evaluations + 1
        match factor jacobian (h * method.Gamma) with
        | Some(lu, pivots) ->
            use _ = lu
            use _ = pivots
            stages f t y h fy (lu, pivots) (b, d)
        | None ->
            failures <- failures + 1
            if not adaptive || failures >= options.MaxFailures then
                let tried = if adaptive then $" after {failures} attempts at ever smaller steps (the last h = {h})" else $" with fixed steps of h = {h}"
                raise (OdeSolveException(OdeFailure.SingularMatrix, t, $"The matrix (1/(hγ)) I − ∂f/∂y of {tableau.Name} (h = {h}, γ = {method.Gamma}) is singular or not finite at t = {t}{tried}. Check the vector field's Jacobian near this time (a user-supplied Jacobian of the wrong sign or scale, or NaN in the state?)."))
            // Reject: the loop shrinks the step (an infinite error) and retries from the same start.
            use inf = Scalar.op_Implicit Double.PositiveInfinity
            { Y1 = y.alias(); Ks = [| fy |]; Error = torch.full_like(y, inf); Order = 0; F1 = null }

    interface IDisposable with
        member _.Dispose() =
            for t in [ jacobian; dfdt ] do
                if not (isNull t) then t.Dispose()
            jacobian <- null
            dfdt <- null
