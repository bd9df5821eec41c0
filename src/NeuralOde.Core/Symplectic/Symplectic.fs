/// Symplectic integrators for separable Hamiltonian systems H(q, p) = ½‖p‖² + V(q) (unit mass): q̇ = p,
/// ṗ = a(q) = −∇V(q). A method is data — a composition of drifts q ← q + c_i h p and kicks p ← p + d_i h a(q)
/// (Hairer, Lubich & Wanner, "Geometric Numerical Integration", §II.4–5) — and preserves the symplectic form, so the
/// energy error stays bounded over long horizons instead of drifting as it does with Runge–Kutta methods.
namespace NeuralOde.Core

open System
open TorchSharp

/// A splitting method: drifts c_i and kicks d_i applied in turn (c_1, d_1, c_2, d_2, …), with Σ c_i = Σ d_i = 1.
type SymplecticMethod =
    { /// E.g. "leapfrog".
      Name: string
      /// Order of accuracy.
      Order: int
      /// Drift coefficients c_i.
      Drift: float[]
      /// Kick coefficients d_i (a last 0 ends on a drift).
      Kick: float[]
      /// Where the coefficients come from.
      Citation: string }

    override m.ToString() = m.Name

/// The methods and the integration loop.
module Symplectic =
    /// Störmer–Verlet / leapfrog (drift ½, kick 1, drift ½), second order; one force evaluation per step.
    let leapfrog =
        { Name = "leapfrog"; Order = 2; Drift = [| 0.5; 0.5 |]; Kick = [| 1.0; 0.0 |]
          Citation = "Störmer–Verlet; Hairer, Lubich & Wanner, Geometric Numerical Integration, §I.1.4" }

    /// Yoshida's fourth-order composition of leapfrog steps (w₁ = 1/(2 − 2^{1/3}), w₀ = −2^{1/3} w₁); three force
    /// evaluations per step.
    let yoshida4 =
        let w1 = 1.0 / (2.0 - Math.Cbrt 2.0)
        let w0 = -(Math.Cbrt 2.0) * w1
        { Name = "yoshida4"; Order = 4
          Drift = [| w1 / 2.0; (w0 + w1) / 2.0; (w0 + w1) / 2.0; w1 / 2.0 |]
          Kick = [| w1; w0; w1; 0.0 |]
          Citation = "Yoshida, Construction of higher order symplectic integrators, Phys. Lett. A 150 (1990)" }

    /// The positions and momenta after `steps` steps of size `dt` from (q0, p0), with the states every `saveEvery`
    /// steps (the first and the last included): (q [k, ...q0.shape], p [k, ...]). `acceleration q` returns −∇V(q) with
    /// q's shape. Differentiable by autograd when q0, p0 or the acceleration's tensors require grad. Raises
    /// OdeSolveException (NonFiniteValue, with the time of the evaluation) when the acceleration returns NaN or Inf.
    let solve (methodUsed: SymplecticMethod) (acceleration: torch.Tensor -> torch.Tensor) (q0: torch.Tensor) (p0: torch.Tensor)
              (dt: float) (steps: int) (saveEvery: int) : torch.Tensor * torch.Tensor =
        if isNull (box acceleration) then raise (ArgumentNullException("acceleration"))
        if isNull q0 then raise (ArgumentNullException("q0"))
        if isNull p0 then raise (ArgumentNullException("p0"))
        if q0.shape <> p0.shape then
            let qShape, pShape = Internal.TensorOps.shapeText q0, Internal.TensorOps.shapeText p0
            raise (ArgumentException($"q0 and p0 must have one shape; got {qShape} and {pShape}.", "p0"))
        Internal.Guard.finite "dt" dt
        if dt = 0.0 then raise (ArgumentOutOfRangeException("dt", dt, "dt must not be zero."))
        Internal.Guard.stepCount "steps" 100_000_000 steps
        if saveEvery < 1 then raise (ArgumentOutOfRangeException("saveEvery", saveEvery, $"saveEvery must be at least 1; got {saveEvery}."))
        let qs, ps = Collections.Generic.List<torch.Tensor>(), Collections.Generic.List<torch.Tensor>()
        qs.Add(q0.alias())
        ps.Add(p0.alias())
        let mutable q, p = q0.alias(), p0.alias()
        try
            for step in 1 .. steps do
                use scope = torch.NewDisposeScope()
                let mutable qi, pi = q, p
                // The time of the positions after each drift (the acceleration is evaluated there).
                let mutable ti = float (step - 1) * dt
                for i in 0 .. methodUsed.Drift.Length - 1 do
                    qi <- Internal.TensorOps.addScaled qi pi (methodUsed.Drift[i] * dt)
                    ti <- ti + methodUsed.Drift[i] * dt
                    if methodUsed.Kick[i] <> 0.0 then
                        use a = acceleration qi
                        if a.shape <> qi.shape then
                            let aShape, qShape = Internal.TensorOps.shapeText a, Internal.TensorOps.shapeText qi
                            raise (ArgumentException($"acceleration returned shape {aShape} for positions of shape {qShape}.", "acceleration"))
                        // As the ODE solvers fail on a field that returns NaN or Inf, instead of returning NaN.
                        use finite = torch.isfinite(a).all()
                        if not (finite.item<bool>()) then raise (StepRules.nonFinite ti "The acceleration returned NaN or Inf")
                        pi <- Internal.TensorOps.addScaled pi a (methodUsed.Kick[i] * dt)
                let nq, np = qi.MoveToOuterDisposeScope(), pi.MoveToOuterDisposeScope()
                q.Dispose()
                p.Dispose()
                q <- nq
                p <- np
                if step % saveEvery = 0 || step = steps then
                    // Made inside this step's dispose scope: moved out of it (freed in the finally below).
                    qs.Add(q.alias().MoveToOuterDisposeScope())
                    ps.Add(p.alias().MoveToOuterDisposeScope())
            torch.stack(qs, 0L), torch.stack(ps, 0L)
        finally
            q.Dispose()
            p.Dispose()
            for t in qs do t.Dispose()
            for t in ps do t.Dispose()
