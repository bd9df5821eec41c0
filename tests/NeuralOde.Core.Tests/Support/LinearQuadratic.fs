/// A hand-derived gradient: the scalar linear system x' = a x, x(t0) = x0, with the loss
///   L = c·x(t1) + q ∫_{t0}^{t1} x(t)² dt.
/// With τ = t1 − t0, x(t) = x0 e^{a(t − t0)}, so
///   L       = c x0 e^{aτ} + q x0² (e^{2aτ} − 1) / (2a)
///   ∂L/∂x0  = c e^{aτ} + q x0 (e^{2aτ} − 1) / a
///   ∂L/∂a   = c x0 τ e^{aτ} + q x0² [ τ e^{2aτ} / a − (e^{2aτ} − 1) / (2a²) ]
///   ∂L/∂t1  = c a x0 e^{aτ} + q x0² e^{2aτ}    (= a(t1)·f(x(t1)) + l(x(t1)), the adjoint's end-time formula)
///   ∂L/∂t0  = −∂L/∂t1                          (the system is autonomous: L depends on τ only)
/// Used by the tests and by paper-appendix/derivations/linear-quadratic-adjoint.fsx, which prints the derivation.
module NeuralOde.Tests.Support.LinearQuadratic

type Case = { A: float; X0: float; C: float; Q: float; T0: float; T1: float }

let loss (k: Case) =
    let tau = k.T1 - k.T0
    k.C * k.X0 * exp (k.A * tau) + k.Q * k.X0 * k.X0 * (exp (2.0 * k.A * tau) - 1.0) / (2.0 * k.A)

let dLdx0 (k: Case) =
    let tau = k.T1 - k.T0
    k.C * exp (k.A * tau) + k.Q * k.X0 * (exp (2.0 * k.A * tau) - 1.0) / k.A

let dLda (k: Case) =
    let tau = k.T1 - k.T0
    let e2 = exp (2.0 * k.A * tau)
    k.C * k.X0 * tau * exp (k.A * tau) + k.Q * k.X0 * k.X0 * (tau * e2 / k.A - (e2 - 1.0) / (2.0 * k.A * k.A))

let dLdt1 (k: Case) =
    let tau = k.T1 - k.T0
    k.C * k.A * k.X0 * exp (k.A * tau) + k.Q * k.X0 * k.X0 * exp (2.0 * k.A * tau)

let dLdt0 (k: Case) = -(dLdt1 k)

/// The case the tests and the script use.
let example = { A = -0.7; X0 = 1.3; C = 0.5; Q = 2.0; T0 = 0.2; T1 = 1.7 }
