/// Explicit midpoint rule, order 2 (Runge 1895; Hairer, Nørsett & Wanner, "Solving ODEs I", §II.1).
module NeuralOde.Core.Tableaux.Midpoint

open NeuralOde.Core

/// The method as data, checked by ButcherTableau.create.
let tableau =
    ButcherTableau.create "midpoint" 2 None [| 0.0; 0.5 |] [| [||]; [| 0.5 |] |] [| 0.0; 1.0 |] None DenseOutput.Hermite
        "Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, §II.1 (Runge 1895)"
