/// Forward Euler, order 1 (Euler 1768; Hairer, Nørsett & Wanner, "Solving ODEs I", §I.7).
module NeuralOde.Core.Tableaux.Euler

open NeuralOde.Core

/// The method as data, checked by ButcherTableau.create.
let tableau =
    ButcherTableau.create "euler" 1 None [| 0.0 |] [| [||] |] [| 1.0 |] None DenseOutput.Hermite
        "Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, §I.7"
