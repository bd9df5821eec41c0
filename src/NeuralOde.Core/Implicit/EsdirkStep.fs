/// One step of a singly diagonally implicit Runge–Kutta method with an explicit first stage (ESDIRK; Kværnø 2004),
/// on tensors: k_1 = f(t, y); for i ≥ 2 the stage z_i = y + h Σ_{j<i} a_ij k_j + hγ f(t + c_i h, z_i) by the simplified
/// Newton iteration (StageNewton), k_i = (z_i − base_i)/(hγ); y1 = y + h Σ b_i k_i, error h Σ e_i k_i. The loop takes
/// it as Loop.Settings.Step. The Jacobian and the factors of I − hγJ are kept across stages and steps (one Stepper per
/// solve): J is recomputed when an iteration converged slowly (rate above 0.5, at the next step) or failed (at once,
/// for the same step); when the iteration fails with a fresh J the step is rejected and the loop shrinks it, up to
/// NewtonOptions.MaxFailures times, then the solve fails with NewtonDivergence or SingularMatrix and the time.
///
/// An IMEX tableau (Kennedy & Carpenter 2003: ButcherTableau.ExplicitA) on a split problem f = f_E + f_I takes the
/// same steps with additive stages: z_i = y + h Σ_{j<i} (a^E_ij k^E_j + a_ij k^I_j) + hγ f_I(t + c_i h, z_i), Newton
/// on f_I with the Jacobian of f_I alone, k^E_i = f_E(t + c_i h, z_i); y1 = y + h Σ b_i (k^E_i + k^I_i), error
/// h Σ e_i (k^E_i + k^I_i). The first stage splits the loop's f(t, y) with one evaluation of f_E: k^I_1 = f(t, y) − k^E_1.
/// Without a split an IMEX tableau is its ESDIRK part on the whole field (f_E = 0); a split problem under a method
/// without an explicit part is solved as the sum.
module internal NeuralOde.Core.Implicit.EsdirkStep

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The relative and absolute scale of the Newton iteration's norm under fixed steps (no rtol/atol given): the stages
/// are solved nearly exactly, so that the method's own error shows.
let fixedStepTolerance = 1e-10

/// A convergence rate above this marks the Jacobian for recomputation at the next step.
let private slowRate = 0.5

/// The implicit steps of one solve with their kept Newton matrix (the field's Jacobian, or an adjoint system's:
/// Implicit/NewtonMatrix.fs). `rtol`/`atol` scale the Newton iteration's norm; `adaptive`: a failed iteration rejects
/// the step (the controller shrinks it) instead of failing the solve. `parts`: a split problem's (f_E, f_I), checked;
/// used when the tableau has an explicit part.
type Stepper(tableau: ButcherTableau, rtol: float, atol: float, adaptive: bool, matrix: NewtonMatrix.INewtonMatrix,
             parts: ((float -> Tensor -> Tensor) * (float -> Tensor -> Tensor)) option) =
    let options = tableau.Newton
    // The explicit part (f_E, a^E) of an IMEX step, and the field the Newton iteration and the Jacobian see: f_I, or
    // the loop's f (the whole field) for an ESDIRK step.
    let explicitPart, stiffPart =
        match parts, tableau.ExplicitA with
        | Some(nonStiff, stiff), Some a -> Some(nonStiff, a), Some stiff
        | _ -> None, None
    let implicitField f = defaultArg stiffPart f
    let gamma = tableau.Gamma
    let s = tableau.Stages
    // J was evaluated at the current step's start (t, y); a slow iteration asks for a new one at the next step.
    let mutable fresh = false
    let mutable stale = false
    let mutable eta = 1.0
    let mutable lastT = nan
    let mutable lastY: Tensor = null
    let mutable failures = 0
    let mutable evaluations = 0

    let newJacobian f t (y: Tensor) =
        matrix.Evaluate(f, t, y)
        evaluations <- evaluations + 1
        fresh <- true
        stale <- false

    /// The stages, or the failure (kind, why) of the first stage whose iteration failed.
    /// `f` is the field the iteration solves (f_I for an IMEX step); ks holds its stages, ksE the explicit part's.
    let stages f (t: float) (y: Tensor) (h: float) (fy: Tensor) : Result<RungeKuttaStep.StepResult<Tensor>, OdeFailure * string> =
        let hGamma = h * gamma
        let ks = Array.zeroCreate<Tensor> s
        let ksE = Array.zeroCreate<Tensor> s
        match explicitPart with
        | Some(nonStiff, _) ->
            ksE[0] <- nonStiff t y
            ks[0] <- TensorOps.addScaled fy ksE[0] -1.0
        | None -> ks[0] <- fy
        /// y + h Σ_j (w_j k_j + w^E_j k^E_j) over the first w.Length stages (w^E: the explicit part's row, if any).
        let combined (w: float[]) (explicitW: float[]) =
            match explicitPart with
            | Some _ -> TensorOps.combine y h (Array.append w explicitW) (Array.append ks[0 .. w.Length - 1] ksE[0 .. w.Length - 1])
            | None -> TensorOps.combine y h w ks
        let mutable failed = None
        let mutable i = 1
        while failed.IsNone && i < s do
            let baseState = combined tableau.A[i] (match explicitPart with Some(_, a) -> a[i] | None -> [||])
            let guess = TensorOps.addScaled baseState ks[i - 1] hGamma
            let tc = t + tableau.C[i] * h
            match StageNewton.solve options rtol atol f tc baseState guess hGamma matrix.Solve eta with
            | StageNewton.Converged(z, rate) ->
                if rate > slowRate then stale <- true
                // Hairer & Wanner's carried η: from this rate when there was one (two iterations or more), relaxed
                // towards 1 by the power 0.8 at each stage.
                if rate > 0.0 then eta <- rate / (1.0 - rate)
                eta <- Math.Pow(max eta 1e-16, 0.8)
                ks[i] <- TensorOps.scale (TensorOps.addScaled z baseState -1.0) (1.0 / hGamma)
                explicitPart |> Option.iter (fun (nonStiff, _) -> ksE[i] <- nonStiff tc z)
            | StageNewton.Failed why -> failed <- Some(OdeFailure.NewtonDivergence, $"stage {i + 1}: {why}")
            i <- i + 1
        match failed with
        | Some failure ->
            eta <- 1.0
            Error failure
        | None ->
            let y1 = combined tableau.B tableau.B
            let e = tableau.E.Value
            let error =
                match explicitPart with
                | Some _ -> TensorOps.weightedSum h (Array.append e e) (Array.append ks ksE)
                | None -> TensorOps.weightedSum h e ks
            // Ks[0] is f(t, y), whole (the dense output's); the explicit stages stay in the step's scope.
            Ok { Y1 = y1; Ks = Array.append [| fy |] ks[1..]; Error = error; Order = 0; F1 = null }

    /// The Jacobian evaluations so far.
    member _.JacobianEvaluations = evaluations

    /// One step of h from (t, y) with fy = f(t, y): Loop.Settings.Step.
    member _.Step (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (h: float) (fy: Tensor) : RungeKuttaStep.StepResult<Tensor> =
        // A new start: the last trial step was accepted. The same start: it was rejected, and this is a retry.
        if not (obj.ReferenceEquals(y, lastY) && t = lastT) then
            fresh <- false
            failures <- 0
            lastY <- y
            lastT <- t
        let hGamma = h * gamma
        let fi = implicitField f
        let mutable result = None
        while result.IsNone do
            if not matrix.IsEvaluated || (stale && not fresh) then newJacobian fi t y
            let attempt =
                if matrix.Factor hGamma then stages fi t y h fy
                else Error(OdeFailure.SingularMatrix, $"the Newton matrix I − hγ·∂f/∂y (h = {h}, γ = {gamma}) is singular or not finite")
            match attempt with
            | Ok r -> result <- Some r
            | Error _ when not fresh -> newJacobian fi t y
            | Error(kind, why) ->
                failures <- failures + 1
                if not adaptive || failures >= options.MaxFailures then
                    let tried = if adaptive then $" after {failures} attempts with a fresh Jacobian and ever smaller steps (the last h = {h})" else $" with fixed steps of h = {h}"
                    let advice =
                        if kind = OdeFailure.SingularMatrix then "Check the vector field's Jacobian near this time (a user-supplied Jacobian of the wrong sign or scale?)."
                        elif options.Structure = JacobianStructure.RowBlocks then "Check that the field's rows really do not interact (else use JacobianStructure.Dense), or loosen rtol/atol."
                        else "Loosen rtol/atol, raise NewtonOptions.MaxIterations, or check the vector field (and a user-supplied Jacobian) near this time."
                    raise (OdeSolveException(kind, t, $"The Newton iteration of {tableau.Name} failed at t = {t}: {why}{tried}. {advice}"))
                // Reject: the loop shrinks the step (an infinite error) and retries from the same start.
                use inf = Scalar.op_Implicit Double.PositiveInfinity
                result <- Some { Y1 = y.alias(); Ks = [| fy |]; Error = torch.full_like(y, inf); Order = 0; F1 = null }
        result.Value

    interface IDisposable with
        member _.Dispose() = matrix.Dispose()
