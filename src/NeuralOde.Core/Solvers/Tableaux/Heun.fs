/// Heun's method (explicit trapezoidal rule), order 2 (Heun 1900; Butcher 2016, §23).
module NeuralOde.Core.Tableaux.Heun

open NeuralOde.Core

/// The method as data, checked by ButcherTableau.create.
let tableau =
    ButcherTableau.create "heun" 2 None [| 0.0; 1.0 |] [| [||]; [| 1.0 |] |] [| 0.5; 0.5 |] None DenseOutput.Hermite
        "Butcher, Numerical Methods for Ordinary Differential Equations (2016), §23 (Heun 1900)"
