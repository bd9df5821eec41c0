/// Kennedy and Carpenter's additive Runge–Kutta method ARK3(2)4L[2]SA: four stages, an explicit Runge–Kutta method (for a
/// split problem's non-stiff part f_E) and an ESDIRK method (for its stiff part f_I, L-stable and stiffly accurate)
/// that share the nodes c, the weights b (order 3) and the embedded weights b̂ (order 2) (C. A. Kennedy and
/// M. H. Carpenter, "Additive Runge–Kutta schemes for convection–diffusion–reaction equations", Applied Numerical
/// Mathematics 44 (2003) 139–181). The coefficients are the paper's rationals, as transcribed in SciML's
/// OrdinaryDiffEq (KenCarp3Tableau) and diffrax (kencarp3.py); the tests check the order and coupling conditions.
module NeuralOde.Core.Tableaux.KenCarp3

open NeuralOde.Core

let private g = 1767732205903.0 / 4055673282236.0

/// Solution weights (shared): the implicit part's last row, so the implicit part is stiffly accurate.
let private b = [| 1471266399579.0 / 7840856788654.0; -4482444167858.0 / 7529755066697.0; 11266239266428.0 / 11593286722821.0; g |]
/// Embedded weights (shared).
let private bHat = [| 2756255671327.0 / 12835298489170.0; -10771552573575.0 / 22201958757719.0; 9247589265047.0 / 10645013368117.0; 2193209047091.0 / 5459859503100.0 |]

/// The explicit part's strictly lower coefficients a^E_ij.
let private explicitA =
    [| [||]
       [| 2.0 * g |]
       [| 5535828885825.0 / 10492691773637.0; 788022342437.0 / 10882634858940.0 |]
       [| 6485989280629.0 / 16251701735622.0; -4246266847089.0 / 9704473918619.0; 10755448449292.0 / 10357097424841.0 |] |]

/// The implicit part's strictly lower coefficients a^I_ij (γ on the diagonal of stages 2 … s).
let private implicitA =
    [| [||]
       [| g |]
       [| 2746238789719.0 / 10658868560708.0; -640167445237.0 / 6845629431997.0 |]
       [| 1471266399579.0 / 7840856788654.0; -4482444167858.0 / 7529755066697.0; 11266239266428.0 / 11593286722821.0 |] |]

/// The method as data, checked by ButcherTableau.createImex.
let tableau =
    ButcherTableau.createImex "kencarp3" 3 2 g
        [| 0.0; 2.0 * g; 3.0 / 5.0; 1.0 |]
        explicitA implicitA b (Array.map2 (-) b bHat)
        "Kennedy & Carpenter (2003), Applied Numerical Mathematics 44:139-181, ARK3(2)4L[2]SA"
