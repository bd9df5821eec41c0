/// The stiffness switcher's step (Solvers.autoSwitch; the rule in AutoSwitching): each trial step is the explicit
/// method's Runge–Kutta step or the implicit method's step, whichever the solve is in. The verdict on stiffness is
/// taken when a step has been accepted (the loop starts the next trial from its end):
/// - explicit: hρ from the step's two stages at one node, ρ ≈ ‖k_j − k_i‖ / ‖g_j − g_i‖ (g: the stages' arguments;
///   Hairer & Wanner, "Solving ODEs II", §IV.2, as dopri5's own test); above the threshold (90% of the explicit
///   method's stability boundary) it counts as stiff, and after StiffSteps such steps (three non-stiff ones in a row reset the count) the implicit
///   method takes over from the next step;
/// - implicit: ρ by two steps of power iteration on f at the step's start, ρ ≈ ‖f(y + εv) − f(y)‖ / ‖εv‖, the vector v
///   carried from step to step (first from k_j − k_i, which is J applied to g_j − g_i); with the step the implicit
///   method is about to take below the threshold for NonStiffSteps steps in a row, the explicit method takes over.
/// Estimates are made without gradients; the steps themselves are differentiable as their methods are.
module internal NeuralOde.Core.Implicit.SwitchingStep

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal
open NeuralOde.Core.State

type Tensor = torch.Tensor

/// ‖x‖₂ on the host.
let private norm (x: Tensor) = (use n = x.norm() in n.to_type(torch.float64).item<float>())

/// The switches of one solve, with its implicit method's step.
type Stepper(rule: AutoSwitching, adaptive: bool,
             implicitStep: (float -> Tensor -> Tensor) -> float -> Tensor -> float -> Tensor -> RungeKuttaStep.StepResult<Tensor>) =
    let explicitTableau = rule.Explicit
    let boundary = rule.Threshold * rule.StabilityBoundary
    let i, j = rule.StagePair
    // The difference of the two stages' arguments: g_j − g_i = h Σ_l (a_jl − a_il) k_l (a_j is b for a FSAL stage).
    let rowOf (k: int) = Array.init j (fun l -> if l < explicitTableau.A[k].Length then explicitTableau.A[k][l] else 0.0)
    let argumentDifference = Array.map2 (-) (rowOf j) (rowOf i)
    let mutable stiff = false
    let mutable stiffCount = 0
    let mutable calmRun = 0
    let mutable calmCount = 0
    let mutable lastT = nan
    let mutable lastY: Tensor = null
    // hρ of the last explicit trial step; NaN when none.
    let mutable pending = nan
    // The power iteration's vector (detached, kept across steps), or null.
    let mutable direction: Tensor = null
    let switches = Collections.Generic.List<SolverSwitch>()

    let keepDirection (v: Tensor) =
        if not (isNull direction) then direction.Dispose()
        direction <- v.detach().clone().DetachFromDisposeScope()

    /// ρ at (t, y) by two steps of power iteration from the kept vector (or a vector of ones).
    let powerEstimate (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (fy: Tensor) =
        use _ = torch.no_grad()
        use scope = torch.NewDisposeScope()
        let precision = torch.finfo(y.dtype).eps
        let y0 = y.detach()
        let f0 = fy.detach()
        let mutable v = if isNull direction then torch.ones_like(y0) else direction
        let mutable rho = 0.0
        let mutable moved = false
        for _ in 1 .. 2 do
            let size = norm v
            if size > 0.0 && Double.IsFinite size then
                // √ε of the state's dtype: a perturbation rounding does not swamp (float32: 3.5e-4 relative).
                let eps = sqrt precision * (1.0 + norm y0) / size
                let fv = f t (TensorOps.addScaled y0 v eps)
                let dv = TensorOps.addScaled fv f0 -1.0
                rho <- norm dv / (eps * size)
                v <- dv
                moved <- true
        if moved && Double.IsFinite rho && norm v > 0.0 then keepDirection v
        rho

    /// hρ of an explicit step from its stages, and the stage difference kept as the power iteration's start.
    let stageEstimate (h: float) (ks: Tensor[]) =
        use _ = torch.no_grad()
        use scope = torch.NewDisposeScope()
        let detached = ks[0 .. j] |> Array.map (fun k -> k.detach())
        let dk = TensorOps.addScaled detached[j] detached[i] -1.0
        let dg = TensorOps.weightedSum h argumentDifference detached[0 .. j - 1]
        let dgNorm = norm dg
        let rho = if dgNorm > 0.0 then norm dk / dgNorm else 0.0
        if Double.IsFinite rho && rho > 0.0 then keepDirection dk
        abs h * rho

    /// The verdict on the accepted step that ended at (t, y), before the next trial step of h.
    let judge f t y h fy =
        if not stiff then
            if pending > boundary then
                stiffCount <- stiffCount + 1
                calmRun <- 0
            else
                calmRun <- calmRun + 1
                if calmRun >= 3 then stiffCount <- 0
            if stiffCount >= rule.StiffSteps then
                stiff <- true
                calmCount <- 0
                switches.Add { Time = t; Solver = rule.Implicit.Name }
        else
            if abs h * powerEstimate f t y fy < boundary then calmCount <- calmCount + 1 else calmCount <- 0
            if calmCount >= rule.NonStiffSteps then
                stiff <- false
                stiffCount <- 0
                calmRun <- 0
                switches.Add { Time = t; Solver = explicitTableau.Name }
        pending <- nan

    /// Where the solve changed method so far.
    member _.Switches = switches.ToArray()

    /// One trial step of h from (t, y) with fy = f(t, y): Loop.Settings.Step.
    member _.Step (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (h: float) (fy: Tensor) : RungeKuttaStep.StepResult<Tensor> =
        // A new start: the last trial step was accepted.
        if not (obj.ReferenceEquals(y, lastY) && t = lastT) then
            if not (isNull lastY) then judge f t y h fy
            lastY <- y
            lastT <- t
        if stiff then { implicitStep f t y h fy with Order = rule.Implicit.ErrorOrder }
        else
            let r = RungeKuttaStep.step TensorAlgebra.Shared explicitTableau adaptive f t y h fy
            pending <- stageEstimate h r.Ks
            let s = r.Ks.Length
            { r with Order = explicitTableau.ErrorOrder; F1 = (if explicitTableau.Fsal then r.Ks[s - 1] else null) }

    interface IDisposable with
        member _.Dispose() =
            if not (isNull direction) then direction.Dispose()
            direction <- null
