/// Stiff test problems for the implicit solvers (Hairer & Wanner, "Solving ODEs II", §IV.1 and §IV.10), written with
/// the library's tensor helpers (no TorchSharp operators with temporary Scalars).
module NeuralOde.Tests.Implicit.StiffProblems

open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal
open NeuralOde.Tests.Support

type private Tensor = torch.Tensor

/// Adaptive control at rtol, atol within a budget of maxSteps accepted and rejected steps.
let adaptiveWithin rtol atol maxSteps = StepControl.Adaptive { StepControl.defaults with RTol = rtol; ATol = atol; MaxSteps = maxSteps }

/// Adaptive control at rtol, atol within 20,000 steps.
let adaptive rtol atol = adaptiveWithin rtol atol 20_000

/// The rate constants of Robertson's chemical reaction (k1, k2, k3) = (0.04, 3e7, 1e4).
let robertsonRates = [| 0.04; 3e7; 1e4 |]

/// Robertson's reaction with rates k [3] (a tensor, so that gradients can flow to it): y1' = −k1 y1 + k3 y2 y3,
/// y2' = k1 y1 − k3 y2 y3 − k2 y2², y3' = k2 y2². The state's last dimension holds (y1, y2, y3); rows do not interact.
let robertson (k: Tensor) : VectorField =
    fun _ y ->
        let k1, k2, k3 = k.narrow(0, 0L, 1L), k.narrow(0, 1L, 1L), k.narrow(0, 2L, 1L)
        let y1, y2, y3 = y.narrow(-1, 0L, 1L), y.narrow(-1, 1L, 1L), y.narrow(-1, 2L, 1L)
        let r1 = y1.mul(k1)
        let r2 = y2.square().mul(k2)
        let r3 = y2.mul(y3).mul(k3)
        let d1 = TensorOps.addScaled r3 r1 -1.0
        let d2 = TensorOps.addScaled (TensorOps.addScaled r1 r3 -1.0) r2 -1.0
        torch.cat([| d1; d2; r2.clone() |], -1L)

/// Σ w ⊙ y(T) for Robertson with rates k0 ⊙ p from x0 (w weighs y2 up to the others' scale).
let robertsonLoss (solver: ButcherTableau) (control: StepControl) (tEnd: float) (x0: torch.Tensor) (p: torch.Tensor) =
    use k0 = Tensors.f64 robertsonRates
    use k = k0.mul(p)
    use w = Tensors.f64 [| 1.0; 1e4; 1.0 |]
    use solution = Ode.odeint (robertson k) x0 [| 0.0; tEnd |] solver control
    use last = solution.Final
    last.mul(w).sum()

/// Central differences of `value` at x with step eps per entry (no graph).
let centralDifferences (eps: float) (value: torch.Tensor -> float) (x: float[]) =
    Array.init x.Length (fun i ->
        let at d =
            let v = Array.copy x
            v[i] <- v[i] + d
            use t = Tensors.f64 v
            use _ = torch.no_grad()
            value t
        (at eps - at -eps) / (2.0 * eps))

/// Van der Pol's oscillator in Liénard's form (MATLAB's vdp1000): y1' = y2, y2' = μ(1 − y1²) y2 − y1; the last
/// dimension holds (y1, y2). Its period is about (3 − 2 ln 2) μ; stiff where |y1| > 1 (eigenvalue ≈ μ(1 − y1²)).
let vanDerPol (mu: float) : VectorField =
    fun _ y ->
        let y1, y2 = y.narrow(-1, 0L, 1L), y.narrow(-1, 1L, 1L)
        let damping = TensorOps.scale (TensorOps.addConstant (y1.square()) -1.0) (-mu)
        let d2 = TensorOps.addScaled (damping.mul(y2)) y1 -1.0
        torch.cat([| y2.clone(); d2 |], -1L)

/// A linear stiff system dx/dt = A x with eigenvalues −1 and −1000: A = P diag(−1, −1000) P⁻¹ with P's columns
/// (1, 1) and (1, −1) — both modes in both entries.
let stiffLinear = [| [| -500.5; 499.5 |]; [| 499.5; -500.5 |] |]

/// HIRES, a "High Irradiance RESponse" of plant physiology (Hairer & Wanner §IV.10; the IVP test set's "hires"):
/// eight species, linear but for the reaction 280·y6·y8; f = y Lᵀ + s + 280 y6 y8 (0, 0, 0, 0, 0, −1, 1, −1).
let hires: VectorField =
    let rows =
        [| [| -1.71; 0.43; 8.32; 0.0; 0.0; 0.0; 0.0; 0.0 |]
           [| 1.71; -8.75; 0.0; 0.0; 0.0; 0.0; 0.0; 0.0 |]
           [| 0.0; 0.0; -10.03; 0.43; 0.035; 0.0; 0.0; 0.0 |]
           [| 0.0; 8.32; 1.71; -1.12; 0.0; 0.0; 0.0; 0.0 |]
           [| 0.0; 0.0; 0.0; 0.0; -1.745; 0.43; 0.43; 0.0 |]
           [| 0.0; 0.0; 0.0; 0.69; 1.71; -0.43; 0.69; 0.0 |]
           [| 0.0; 0.0; 0.0; 0.0; 0.0; 0.0; -1.81; 0.0 |]
           [| 0.0; 0.0; 0.0; 0.0; 0.0; 0.0; 1.81; 0.0 |] |]
    // Kept for the test process's lifetime (three small constants).
    let linearT = (Tensors.f64m rows).t().contiguous()
    let source = Tensors.f64 [| 0.0007; 0.0; 0.0; 0.0; 0.0; 0.0; 0.0; 0.0 |]
    let reaction = Tensors.f64 [| 0.0; 0.0; 0.0; 0.0; 0.0; -280.0; 280.0; -280.0 |]
    fun _ y ->
        let r = y.narrow(-1, 5L, 1L).mul(y.narrow(-1, 7L, 1L))
        TensorOps.plus (TensorOps.plus (y.matmul(linearT)) source) (r.mul(reaction))

/// HIRES's standard initial state and end time.
let hiresInitial = [| 1.0; 0.0; 0.0; 0.0; 0.0; 0.0; 0.0; 0.0057 |]
let hiresEnd = 321.8122
