/// The classical fourth-order Runge–Kutta method (Kutta 1901; Hairer, Nørsett & Wanner, "Solving ODEs I", Table II.1.2).
module NeuralOde.Core.Tableaux.Rk4

open NeuralOde.Core

/// The method as data, checked by ButcherTableau.create.
let tableau =
    ButcherTableau.create "rk4" 4 None
        [| 0.0; 0.5; 0.5; 1.0 |]
        [| [||]; [| 0.5 |]; [| 0.0; 0.5 |]; [| 0.0; 0.0; 1.0 |] |]
        [| 1.0 / 6.0; 1.0 / 3.0; 1.0 / 3.0; 1.0 / 6.0 |]
        None DenseOutput.Hermite
        "Kutta (1901); Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, Table II.1.2"
