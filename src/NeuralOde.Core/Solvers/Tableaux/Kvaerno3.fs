/// Kværnø's ESDIRK 3(2): four stages, an explicit first stage, L-stable and stiffly accurate; the embedded solution
/// of order 2 is the third stage (A. Kværnø, "Singly diagonally implicit Runge–Kutta methods with an explicit first
/// stage", BIT Numerical Mathematics 44 (2004) 489–502). The coefficients are Kværnø's formulas in γ; γ is the root
/// of 6γ³ − 18γ² + 9γ − 1 = 0 near 0.4359 (the L-stable three-stage SDIRK's), to double precision.
module NeuralOde.Core.Tableaux.Kvaerno3

open NeuralOde.Core

let private g = 0.43586652150845967
let private a31 = (-4.0 * g * g + 6.0 * g - 1.0) / (4.0 * g)
let private a32 = (-2.0 * g + 1.0) / (4.0 * g)
let private a41 = (6.0 * g - 1.0) / (12.0 * g)
let private a42 = -1.0 / ((24.0 * g - 12.0) * g)
let private a43 = (-6.0 * g * g + 6.0 * g - 1.0) / (6.0 * g - 3.0)

/// Solution weights: the last stage's row (stiffly accurate); the embedded weights are the third stage's row.
let private b = [| a41; a42; a43; g |]
let private bHat = [| a31; a32; g; 0.0 |]

/// The method as data, checked by ButcherTableau.createEsdirk.
let tableau =
    ButcherTableau.createEsdirk "kvaerno3" 3 2 g
        [| 0.0; 2.0 * g; 1.0; 1.0 |]
        [| [||]; [| g |]; [| a31; a32 |]; [| a41; a42; a43 |] |]
        b (Array.map2 (-) b bHat)
        "Kværnø (2004), BIT Numerical Mathematics 44:489-502, ESDIRK 3(2)"
