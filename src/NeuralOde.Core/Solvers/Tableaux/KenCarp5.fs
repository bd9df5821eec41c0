/// Kennedy and Carpenter's additive Runge–Kutta method ARK5(4)8L[2]SA: eight stages, an explicit Runge–Kutta method (for a
/// split problem's non-stiff part f_E) and an ESDIRK method (for its stiff part f_I, L-stable and stiffly accurate)
/// that share the nodes c, the weights b (order 5) and the embedded weights b̂ (order 4) (C. A. Kennedy and
/// M. H. Carpenter, "Additive Runge–Kutta schemes for convection–diffusion–reaction equations", Applied Numerical
/// Mathematics 44 (2003) 139–181). The coefficients are the paper's rationals, as transcribed in SciML's
/// OrdinaryDiffEq (KenCarp5Tableau) and diffrax (kencarp5.py); the tests check the order and coupling conditions.
/// a^I_76 = −4269925059573/7827059040749 as in SciML (with it row 7 sums to c_7 = 3/5; diffrax has the denominator
/// 7827059040719, which leaves the row off by 2e-12).
module NeuralOde.Core.Tableaux.KenCarp5

open NeuralOde.Core

let private g = 41.0 / 200.0

/// Solution weights (shared): the implicit part's last row, so the implicit part is stiffly accurate.
let private b = [| -872700587467.0 / 9133579230613.0; 0.0; 0.0; 22348218063261.0 / 9555858737531.0; -1143369518992.0 / 8141816002931.0; -39379526789629.0 / 19018526304540.0; 32727382324388.0 / 42900044865799.0; g |]
/// Embedded weights (shared).
let private bHat = [| -975461918565.0 / 9796059967033.0; 0.0; 0.0; 78070527104295.0 / 32432590147079.0; -548382580838.0 / 3424219808633.0; -33438840321285.0 / 15594753105479.0; 3629800801594.0 / 4656183773603.0; 4035322873751.0 / 18575991585200.0 |]

/// The explicit part's strictly lower coefficients a^E_ij.
let private explicitA =
    [| [||]
       [| 41.0 / 100.0 |]
       [| 367902744464.0 / 2072280473677.0; 677623207551.0 / 8224143866563.0 |]
       [| 1268023523408.0 / 10340822734521.0; 0.0; 1029933939417.0 / 13636558850479.0 |]
       [| 14463281900351.0 / 6315353703477.0; 0.0; 66114435211212.0 / 5879490589093.0; -54053170152839.0 / 4284798021562.0 |]
       [| 14090043504691.0 / 34967701212078.0; 0.0; 15191511035443.0 / 11219624916014.0; -18461159152457.0 / 12425892160975.0; -281667163811.0 / 9011619295870.0 |]
       [| 19230459214898.0 / 13134317526959.0; 0.0; 21275331358303.0 / 2942455364971.0; -38145345988419.0 / 4862620318723.0; -1.0 / 8.0; -1.0 / 8.0 |]
       [| -19977161125411.0 / 11928030595625.0; 0.0; -40795976796054.0 / 6384907823539.0; 177454434618887.0 / 12078138498510.0; 782672205425.0 / 8267701900261.0; -69563011059811.0 / 9646580694205.0; 7356628210526.0 / 4942186776405.0 |] |]

/// The implicit part's strictly lower coefficients a^I_ij (γ on the diagonal of stages 2 … s).
let private implicitA =
    [| [||]
       [| g |]
       [| 41.0 / 400.0; -567603406766.0 / 11931857230679.0 |]
       [| 683785636431.0 / 9252920307686.0; 0.0; -110385047103.0 / 1367015193373.0 |]
       [| 3016520224154.0 / 10081342136671.0; 0.0; 30586259806659.0 / 12414158314087.0; -22760509404356.0 / 11113319521817.0 |]
       [| 218866479029.0 / 1489978393911.0; 0.0; 638256894668.0 / 5436446318841.0; -1179710474555.0 / 5321154724896.0; -60928119172.0 / 8023461067671.0 |]
       [| 1020004230633.0 / 5715676835656.0; 0.0; 25762820946817.0 / 25263940353407.0; -2161375909145.0 / 9755907335909.0; -211217309593.0 / 5846859502534.0; -4269925059573.0 / 7827059040749.0 |]
       [| -872700587467.0 / 9133579230613.0; 0.0; 0.0; 22348218063261.0 / 9555858737531.0; -1143369518992.0 / 8141816002931.0; -39379526789629.0 / 19018526304540.0; 32727382324388.0 / 42900044865799.0 |] |]

/// The method as data, checked by ButcherTableau.createImex.
let tableau =
    ButcherTableau.createImex "kencarp5" 5 4 g
        [| 0.0; 41.0 / 100.0; 2935347310677.0 / 11292855782101.0; 1426016391358.0 / 7196633302097.0; 23.0 / 25.0; 6.0 / 25.0; 3.0 / 5.0; 1.0 |]
        explicitA implicitA b (Array.map2 (-) b bHat)
        "Kennedy & Carpenter (2003), Applied Numerical Mathematics 44:139-181, ARK5(4)8L[2]SA"
