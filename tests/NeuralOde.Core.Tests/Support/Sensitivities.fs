/// The sensitivity methods under test, by name.
module NeuralOde.Tests.Support.Sensitivities

open NeuralOde.Core

let adjointMethods =
    [ "adjoint", Sensitivity.adjoint
      "adjoint with seminorm", Sensitivity.Adjoint { Sensitivity.defaultOptions with Seminorm = true }
      "interpolated adjoint", Sensitivity.interpolatedAdjoint
      "interpolated adjoint with 2 checkpoints per interval", Sensitivity.InterpolatedAdjoint { Sensitivity.defaultOptions with Checkpoints = 2 } ]

let all = ("autograd", Sensitivity.Autograd) :: adjointMethods

let isAutograd (s: Sensitivity) = match s with Sensitivity.Autograd -> true | _ -> false

/// The tight tolerances of gradient checks (float64).
let tight = StepControl.adaptive 1e-10 1e-12

/// A running loss with a depth-dependent term, shared by the Galerkin and stacked gradient checks.
let runningLoss: IntegralLoss = fun s x -> x.square().sum() * 0.5 + x.sum() * sin (3.0 * s)
