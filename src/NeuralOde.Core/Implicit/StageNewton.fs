/// The simplified Newton iteration that solves one implicit stage z = base + hγ f(t, z) (Hairer & Wanner, "Solving
/// ODEs II", §IV.8): z ← z − M⁻¹ (z − base − hγ f(t, z)) with M = I − hγJ factorised once (torch.linalg.lu_factor,
/// here) and solved by torch.linalg.lu_solve, batched over the Jacobian's blocks (Implicit/NewtonMatrix.fs). The
/// iterates stay in the autograd graph (M is a constant), so gradients flow through the converged stage.
module internal NeuralOde.Core.Implicit.StageNewton

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The LU factors of M = I − hγJ for blocks J [B, d, d], in the caller's dispose scope; None when M is singular or
/// not finite (a zero or non-finite pivot, or one below d·ε of the largest).
let factor (jacobian: Tensor) (hGamma: float) : (Tensor * Tensor) option =
    use _ = torch.no_grad()
    use eye = torch.eye(jacobian.shape[2], dtype = jacobian.dtype, device = jacobian.device)
    use m = TensorOps.addScaled eye jacobian (-hGamma)
    LuFactors.tryFactor m

/// The RMS of dz scaled by atol + rtol·|z| (the solve's error norm), on the host.
let private scaledNorm (rtol: float) (atol: float) (dz: Tensor) (z: Tensor) =
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    ErrorNorm.rmsScaled dz (TensorOps.addConstant (TensorOps.scale (z.abs()) rtol) atol)

/// How a stage's iteration ended.
type Outcome =
    /// The stage's solution and the iteration's last contraction rate (0 when one iteration sufficed).
    | Converged of z: Tensor * rate: float
    /// Why it did not converge.
    | Failed of why: string

/// Iterates from the guess z0 for z = base + hγ f(tc, z) with `solveLinear` applying M⁻¹ (Implicit/NewtonMatrix.fs).
/// Converged when η‖Δz‖ ≤ κ, η = θ/(1 − θ) from the contraction rate θ of successive corrections (before a rate is
/// known: `eta0`, the last stage's); failed when θ ≥ 1, after MaxIterations, or on NaN or Inf. Every tensor is made
/// in the caller's dispose scope.
///
/// When the iterates are recorded by autograd (grad enabled, base requiring grad), one more iteration follows
/// convergence: the derivative of the iterates converges one iteration behind their value (after one iteration on a
/// linear field it still holds the guess's), and the extra iteration takes it to the implicit function theorem's
/// (exactly, when M is exact).
let solve (options: NewtonOptions) (rtol: float) (atol: float) (f: float -> Tensor -> Tensor) (tc: float) (baseState: Tensor)
          (z0: Tensor) (hGamma: float) (solveLinear: Tensor -> Tensor) (eta0: float) : Outcome =
    let iterate (z: Tensor) =
        let fz = f tc z
        let residual = TensorOps.addScaled (TensorOps.addScaled z baseState -1.0) fz (-hGamma)
        let dz = solveLinear residual
        TensorOps.addScaled z dz -1.0, dz
    let recorded = torch.is_grad_enabled () && baseState.requires_grad
    let mutable z = z0
    let mutable previous = nan
    let mutable eta = eta0
    let mutable rate = 0.0
    let mutable iteration = 0
    let mutable outcome = None
    while outcome.IsNone do
        iteration <- iteration + 1
        let next, dz = iterate z
        z <- next
        let norm = scaledNorm rtol atol dz z
        if not (Double.IsFinite norm) then outcome <- Some(Failed "the iteration produced NaN or Inf")
        elif norm = 0.0 then outcome <- Some(Converged(z, rate))
        else
            if iteration > 1 then
                rate <- norm / previous
                eta <- rate / (1.0 - rate)
            if iteration > 1 && rate >= 1.0 then
                outcome <- Some(Failed $"the iteration diverges (contraction rate {rate:G3} after {iteration} iterations)")
            elif eta * norm <= options.Tolerance then outcome <- Some(Converged(z, rate))
            elif iteration >= options.MaxIterations then
                outcome <- Some(Failed $"the iteration did not converge in {options.MaxIterations} iterations (last correction {norm:G3} in the scaled norm, rate {rate:G3})")
        previous <- norm
    match outcome.Value with
    | Converged(z, rate) when recorded -> Converged(fst (iterate z), rate)
    | o -> o
