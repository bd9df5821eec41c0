/// Hypersolvers (Poli, Massaroli, Yamashita, Asama & Park 2020, "Hypersolvers: toward fast continuous-depth models"):
/// a base fixed-step method ψ (any explicit tableau: Euler, midpoint, RK4) plus a learned correction of its local
/// truncation error,
///   z_{n+1} = z_n + h ψ(t_n, z_n) + h^{p+1} g_ω(z_n, f(t_n, z_n)),
/// where p is the base method's order. g_ω is trained on a reference solve's residuals
///   r_n = (z(t_{n+1}) − z_n − h ψ(t_n, z_n)) / h^{p+1},
/// so that a few hypersolver steps reach the accuracy of many base steps. The correction sees the state and the field's
/// value side by side (features [z, f(t, z)], 2d for a state [N, d]).
namespace NeuralOde.Core

open System
open TorchSharp
open type TorchSharp.torch.nn

/// A base method with a learned correction g_ω (a module from [N, 2d] to [N, d]).
type Hypersolver(baseSolver: ButcherTableau, correction: Module<torch.Tensor, torch.Tensor>) =
    do
        if isNull (box baseSolver) then raise (ArgumentNullException("baseSolver"))
        if isNull correction then raise (ArgumentNullException("correction"))
        // The corrected step is an explicit Runge–Kutta step: an implicit method's stages are no explicit formula.
        if baseSolver.IsImplicit then
            raise (ArgumentException($"A hypersolver corrects an explicit method; '{baseSolver.Name}' is implicit. Use euler, midpoint, heun or rk4.", "baseSolver"))
    let order = float baseSolver.Order
    let checkState (z: torch.Tensor) =
        if isNull z then raise (ArgumentNullException("z"))
        if z.dim() <> 2L then
            raise (ArgumentException($"A hypersolver's state must be a batch of vectors [N, d]; got shape {Internal.TensorOps.shapeText z}.", "z"))
    let slope (f: VectorField) (t: float) (z: torch.Tensor) =
        let k1 = f t z
        if isNull k1 || k1.shape <> z.shape then
            let got = if isNull k1 then "null" else Internal.TensorOps.shapeText k1
            raise (ArgumentException($"The vector field must return a tensor of the state's shape {Internal.TensorOps.shapeText z} at t = {t}; it returned {got}.", "field"))
        k1

    /// The base method.
    member _.Base = baseSolver
    /// The correction g_ω.
    member _.Correction = correction

    /// The base step alone: z + h ψ(t, z), and f(t, z).
    member _.BaseStep(f: VectorField, t: float, h: float, z: torch.Tensor) : torch.Tensor * torch.Tensor =
        checkState z
        use scope = torch.NewDisposeScope()
        let k1 = slope f t z
        let result = RungeKuttaStep.step (State.TensorAlgebra.Shared :> State.IStateAlgebra<torch.Tensor>) baseSolver false f t z h k1
        result.Y1.MoveToOuterDisposeScope(), k1.MoveToOuterDisposeScope()

    /// g_ω(z, f(t, z)) [N, d].
    member _.CorrectionAt(z: torch.Tensor, slope: torch.Tensor) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        let g = correction.forward(torch.cat([| z; slope |], 1L))
        if isNull g || g.shape <> z.shape then
            let got = if isNull g then "null" else Internal.TensorOps.shapeText g
            raise (ArgumentException($"The correction must map [N, 2d] = {Internal.TensorOps.shapeText z} twice wide to the state's shape; it returned {got}.", "correction"))
        g.MoveToOuterDisposeScope()

    /// One hypersolver step: z + h ψ(t, z) + h^{p+1} g_ω(z, f(t, z)).
    member m.Step(f: VectorField, t: float, h: float, z: torch.Tensor) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        let next, k1 = m.BaseStep(f, t, h, z)
        let g = m.CorrectionAt(z, k1)
        (Internal.TensorOps.addScaled next g (h ** (order + 1.0))).MoveToOuterDisposeScope()

    /// The states at the `steps` + 1 equally spaced times of [t0, t1] [steps + 1, N, d], by the integration loop
    /// (Engine/Loop.fs) with this step in place of the base method's. Differentiable by autograd.
    member m.Solve(f: VectorField, z0: torch.Tensor, t0: float, t1: float, steps: int) : torch.Tensor =
        checkState z0
        Internal.Guard.span t0 t1
        Internal.Guard.stepCount "steps" 10_000_000 steps
        let times = Array.init (steps + 1) (fun n -> if n = steps then t1 else t0 + (t1 - t0) * float n / float steps)
        let corrected (field: float -> torch.Tensor -> torch.Tensor) (t: float) (z: torch.Tensor) (h: float) (k1: torch.Tensor) =
            let r = RungeKuttaStep.step (State.TensorAlgebra.Shared :> State.IStateAlgebra<torch.Tensor>) baseSolver false field t z h k1
            use next = r.Y1
            let g = m.CorrectionAt(z, k1)
            { r with Y1 = Internal.TensorOps.addScaled next g (h ** (order + 1.0)) }
        let settings = { Integrate.defaultSettings with Step = Some corrected }
        let solution, _ = Integrate.solveWith settings (OdeProblem.create f z0 times) baseSolver (StepControl.Steps(steps, steps))
        solution.States

    /// The residual targets r_n = (z(t_{n+1}) − z_n − h ψ(t_n, z_n)) / h^{p+1} of a reference trajectory
    /// [steps + 1, N, d] on the equally spaced grid of [t0, t1], with the correction's inputs: (inputs [steps·N, 2d],
    /// targets [steps·N, d]).
    member m.Residuals(f: VectorField, reference: torch.Tensor, t0: float, t1: float) : torch.Tensor * torch.Tensor =
        if isNull reference || reference.dim() <> 3L || reference.shape[0] < 2L then
            let got = if isNull reference then "null" else Internal.TensorOps.shapeText reference
            raise (ArgumentException($"The reference must be a trajectory [steps + 1, N, d] with at least one step; got {got}.", "reference"))
        use scope = torch.NewDisposeScope()
        use _ = torch.no_grad()
        let steps = int reference.shape[0] - 1
        let h = (t1 - t0) / float steps
        let inputs, targets =
            [| for n in 0 .. steps - 1 do
                 let z = reference[int64 n]
                 let next, k1 = m.BaseStep(f, t0 + float n * h, h, z)
                 let r = Internal.TensorOps.scale (reference[int64 (n + 1)] - next) (1.0 / (h ** (order + 1.0)))
                 yield torch.cat([| z; k1 |], 1L), r |]
            |> Array.unzip
        torch.cat(inputs, 0L).MoveToOuterDisposeScope(), torch.cat(targets, 0L).MoveToOuterDisposeScope()

/// Training hypersolvers.
module Hypersolver =
    /// Fits the correction to the residuals of a reference solve: the trajectories from the training initial states
    /// `z0` [N, d] on the `steps`-interval grid of [t0, t1] are solved once by Dopri5 at rtol = atol = `tolerance`,
    /// their residuals r_n computed once (they do not depend on the correction), and the correction is fitted to them
    /// by `iterations` full-batch Adam steps at learning rate `lr`. Returns the mean squared residual error per
    /// iteration.
    let train (solver: Hypersolver) (f: VectorField) (z0: torch.Tensor) (t0: float) (t1: float) (steps: int)
              (iterations: int) (lr: float) (tolerance: float) : float[] =
        Internal.Guard.positiveCount "iterations" iterations
        Internal.Guard.positiveFinite "lr" lr
        Internal.Guard.positiveCount "steps" steps
        use scope = torch.NewDisposeScope()
        let times = Array.init (steps + 1) (fun n -> t0 + (t1 - t0) * float n / float steps)
        let reference =
            use _ = torch.no_grad()
            (Ode.odeint f z0 times Solvers.dopri5 (StepControl.adaptive tolerance tolerance)).States
        let inputs, targets = solver.Residuals(f, reference, t0, t1)
        use optimizer = torch.optim.Adam(solver.Correction.parameters(), lr)
        [| for _ in 1 .. iterations do
             use step = torch.NewDisposeScope()
             optimizer.zero_grad()
             let loss = (solver.Correction.forward inputs - targets).square().mean()
             loss.backward()
             optimizer.step() |> ignore
             yield loss.ToDouble() |]
