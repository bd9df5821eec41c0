/// Kennedy and Carpenter's additive Runge–Kutta method ARK4(3)6L[2]SA: six stages, an explicit Runge–Kutta method (for a
/// split problem's non-stiff part f_E) and an ESDIRK method (for its stiff part f_I, L-stable and stiffly accurate)
/// that share the nodes c, the weights b (order 4) and the embedded weights b̂ (order 3) (C. A. Kennedy and
/// M. H. Carpenter, "Additive Runge–Kutta schemes for convection–diffusion–reaction equations", Applied Numerical
/// Mathematics 44 (2003) 139–181). The coefficients are the paper's rationals, as transcribed in SciML's
/// OrdinaryDiffEq (KenCarp4Tableau) and diffrax (kencarp4.py); the tests check the order and coupling conditions.
module NeuralOde.Core.Tableaux.KenCarp4

open NeuralOde.Core

let private g = 1.0 / 4.0

/// Solution weights (shared): the implicit part's last row, so the implicit part is stiffly accurate.
let private b = [| 82889.0 / 524892.0; 0.0; 15625.0 / 83664.0; 69875.0 / 102672.0; -2260.0 / 8211.0; g |]
/// Embedded weights (shared).
let private bHat = [| 4586570599.0 / 29645900160.0; 0.0; 178811875.0 / 945068544.0; 814220225.0 / 1159782912.0; -3700637.0 / 11593932.0; 61727.0 / 225920.0 |]

/// The explicit part's strictly lower coefficients a^E_ij.
let private explicitA =
    [| [||]
       [| 1.0 / 2.0 |]
       [| 13861.0 / 62500.0; 6889.0 / 62500.0 |]
       [| -116923316275.0 / 2393684061468.0; -2731218467317.0 / 15368042101831.0; 9408046702089.0 / 11113171139209.0 |]
       [| -451086348788.0 / 2902428689909.0; -2682348792572.0 / 7519795681897.0; 12662868775082.0 / 11960479115383.0; 3355817975965.0 / 11060851509271.0 |]
       [| 647845179188.0 / 3216320057751.0; 73281519250.0 / 8382639484533.0; 552539513391.0 / 3454668386233.0; 3354512671639.0 / 8306763924573.0; 4040.0 / 17871.0 |] |]

/// The implicit part's strictly lower coefficients a^I_ij (γ on the diagonal of stages 2 … s).
let private implicitA =
    [| [||]
       [| g |]
       [| 8611.0 / 62500.0; -1743.0 / 31250.0 |]
       [| 5012029.0 / 34652500.0; -654441.0 / 2922500.0; 174375.0 / 388108.0 |]
       [| 15267082809.0 / 155376265600.0; -71443401.0 / 120774400.0; 730878875.0 / 902184768.0; 2285395.0 / 8070912.0 |]
       [| 82889.0 / 524892.0; 0.0; 15625.0 / 83664.0; 69875.0 / 102672.0; -2260.0 / 8211.0 |] |]

/// The method as data, checked by ButcherTableau.createImex.
let tableau =
    ButcherTableau.createImex "kencarp4" 4 3 g
        [| 0.0; 1.0 / 2.0; 83.0 / 250.0; 31.0 / 50.0; 17.0 / 20.0; 1.0 |]
        explicitA implicitA b (Array.map2 (-) b bHat)
        "Kennedy & Carpenter (2003), Applied Numerical Mathematics 44:139-181, ARK4(3)6L[2]SA"
