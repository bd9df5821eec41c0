/// The one place that picks the step of an implicit solver for a tensor solve: the loop (Engine/Loop.fs) takes it as
/// Loop.Settings.Step. Each kind of implicit method has its stepper in this folder; the stepper keeps what it reuses
/// across steps (a Jacobian, its factors) and is disposed with the solve.
module internal NeuralOde.Core.Implicit.ImplicitStep

open System
open TorchSharp
open NeuralOde.Core

type Tensor = torch.Tensor

/// An implicit solver's step for one solve (Loop.Settings.Step), with what it holds.
type Stepper =
    { Step: (float -> Tensor -> Tensor) -> float -> Tensor -> float -> Tensor -> RungeKuttaStep.StepResult<Tensor>
      Resources: IDisposable }

/// The stepper of an implicit tableau under a step control: adaptive control scales its Newton iteration's norm by
/// the solve's rtol/atol and rejects a step whose iteration fails; fixed steps solve the stages nearly exactly. A
/// Rosenbrock tableau gets its linearly implicit step (no iteration; a singular matrix rejects the step).
let create (tableau: ButcherTableau) (control: StepControl) : Stepper =
    let rtol, atol, adaptive =
        match control with
        | StepControl.Adaptive o -> o.RTol, o.ATol, true
        | _ -> EsdirkStep.fixedStepTolerance, EsdirkStep.fixedStepTolerance, false
    if tableau.IsRosenbrock then
        let stepper = new RosenbrockStep.Stepper(tableau, adaptive)
        { Step = (fun f t y h fy -> stepper.Step f t y h fy); Resources = stepper }
    else
    let stepper = new EsdirkStep.Stepper(tableau, rtol, atol, adaptive)
    { Step = (fun f t y h fy -> stepper.Step f t y h fy); Resources = stepper }
