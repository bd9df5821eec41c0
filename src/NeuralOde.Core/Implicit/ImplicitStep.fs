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
      Resources: IDisposable
      /// Where the stiffness switcher changed method (empty for the other methods).
      Switches: unit -> SolverSwitch[] }

/// The stepper of an implicit tableau whose Newton iteration uses `matrix` (an adjoint system's: NewtonMatrix), under
/// a step control: adaptive control scales the iteration's norm by the solve's rtol/atol and rejects a step whose
/// iteration fails; fixed steps solve the stages nearly exactly. `parts`: a split problem's checked (f_E, f_I), for an
/// IMEX tableau's additive stages (else None). The stiffness switcher's implicit method takes the matrix and parts.
let rec createWith (matrix: NewtonMatrix.INewtonMatrix) (tableau: ButcherTableau) (control: StepControl)
                   (parts: ((float -> Tensor -> Tensor) * (float -> Tensor -> Tensor)) option) : Stepper =
    let rtol, atol, adaptive =
        match control with
        | StepControl.Adaptive o -> o.RTol, o.ATol, true
        | _ -> EsdirkStep.fixedStepTolerance, EsdirkStep.fixedStepTolerance, false
    match tableau.Switching with
    | Some rule ->
        let inner = createWith matrix rule.Implicit control parts
        let switcher = new SwitchingStep.Stepper(rule, adaptive, inner.Step)
        { Step = (fun f t y h fy -> switcher.Step f t y h fy)
          Resources = { new IDisposable with member _.Dispose() = (try (switcher :> IDisposable).Dispose() finally inner.Resources.Dispose()) }
          Switches = fun () -> switcher.Switches }
    | None when tableau.IsRosenbrock ->
        // Linearly implicit: its own Jacobian of the field, fresh at each step (an adjoint's matrix does not apply:
        // the dispatch refuses Rosenbrock methods for the adjoints' backward solves).
        let stepper = new RosenbrockStep.Stepper(tableau, adaptive)
        { Step = (fun f t y h fy -> stepper.Step f t y h fy); Resources = stepper; Switches = fun () -> [||] }
    | None ->
        let stepper = new EsdirkStep.Stepper(tableau, rtol, atol, adaptive, matrix, parts)
        { Step = (fun f t y h fy -> stepper.Step f t y h fy); Resources = stepper; Switches = fun () -> [||] }

/// The stepper of an implicit tableau for the field's own system: its Newton matrix from the field's Jacobian (of
/// f_I for a split problem) under the tableau's NewtonOptions.
let create (tableau: ButcherTableau) (control: StepControl) parts : Stepper =
    createWith (NewtonMatrix.ofField tableau.Newton) tableau control parts
