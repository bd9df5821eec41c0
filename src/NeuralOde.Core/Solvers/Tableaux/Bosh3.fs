/// Bogacki–Shampine 3(2), FSAL, the method of MATLAB's ode23 (Bogacki & Shampine 1989,
/// "A 3(2) pair of Runge–Kutta formulas", Appl. Math. Lett. 2(4)).
module NeuralOde.Core.Tableaux.Bosh3

open NeuralOde.Core

let private b = [| 2.0 / 9.0; 1.0 / 3.0; 4.0 / 9.0; 0.0 |]
let private bHat = [| 7.0 / 24.0; 1.0 / 4.0; 1.0 / 3.0; 1.0 / 8.0 |]

/// The method as data, checked by ButcherTableau.create.
let tableau =
    ButcherTableau.create "bosh3" 3 (Some 2)
        [| 0.0; 0.5; 0.75; 1.0 |]
        [| [||]; [| 0.5 |]; [| 0.0; 0.75 |]; [| 2.0 / 9.0; 1.0 / 3.0; 4.0 / 9.0 |] |]
        b (Some(Array.map2 (-) b bHat)) DenseOutput.Hermite
        "Bogacki & Shampine (1989), Applied Mathematics Letters 2(4):321-325"
