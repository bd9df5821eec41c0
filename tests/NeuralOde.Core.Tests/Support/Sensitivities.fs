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
