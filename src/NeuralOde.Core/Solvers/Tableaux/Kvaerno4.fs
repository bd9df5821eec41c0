/// Kværnø's ESDIRK 4(3): five stages, an explicit first stage, L-stable and stiffly accurate, advancing with the
/// fourth-order last stage; the embedded solution of order 3 is the fourth stage (A. Kværnø, "Singly diagonally
/// implicit Runge–Kutta methods with an explicit first stage", BIT Numerical Mathematics 44 (2004) 489–502). The
/// coefficients are Kværnø's formulas in γ = 0.5728160625 (her value for the 4/3 pair, not the one of the 3/4 pair).
module NeuralOde.Core.Tableaux.Kvaerno4

open NeuralOde.Core

let private g = 0.5728160625
/// The polynomial with these coefficients (highest power first) at γ.
let private poly (coefficients: float list) = coefficients |> List.fold (fun acc c -> acc * g + c) 0.0

let private a31 = poly [ 144.0; -180.0; 81.0; -15.0; 1.0 ] * g / (poly [ 12.0; -6.0; 1.0 ] ** 2.0)
let private a32 = poly [ -36.0; 39.0; -15.0; 2.0 ] * g / (poly [ 12.0; -6.0; 1.0 ] ** 2.0)
let private a41 = poly [ -144.0; 396.0; -330.0; 117.0; -18.0; 1.0 ] / (12.0 * g * g * poly [ 12.0; -9.0; 2.0 ])
let private a42 = poly [ 72.0; -126.0; 69.0; -15.0; 1.0 ] / (12.0 * g * g * poly [ 3.0; -1.0 ])
let private a43 =
    poly [ -6.0; 6.0; -1.0 ] * (poly [ 12.0; -6.0; 1.0 ] ** 2.0) / (12.0 * g * g * poly [ 12.0; -9.0; 2.0 ] * poly [ 3.0; -1.0 ])
let private a51 = poly [ 288.0; -312.0; 120.0; -18.0; 1.0 ] / (48.0 * g * g * poly [ 12.0; -9.0; 2.0 ])
let private a52 = poly [ 24.0; -12.0; 1.0 ] / (48.0 * g * g * poly [ 3.0; -1.0 ])
let private a53 =
    -(poly [ 12.0; -6.0; 1.0 ] ** 3.0) / (48.0 * g * g * poly [ 3.0; -1.0 ] * poly [ 12.0; -9.0; 2.0 ] * poly [ 6.0; -6.0; 1.0 ])
let private a54 = poly [ -24.0; 36.0; -12.0; 1.0 ] / poly [ 24.0; -24.0; 4.0 ]

/// Solution weights: the last stage's row (stiffly accurate); the embedded weights are the fourth stage's row.
let private b = [| a51; a52; a53; a54; g |]
let private bHat = [| a41; a42; a43; g; 0.0 |]

/// The method as data, checked by ButcherTableau.createEsdirk. Its last two nodes are 1 up to rounding of the
/// formulas; they are written as sums of their rows.
let tableau =
    ButcherTableau.createEsdirk "kvaerno4" 4 3 g
        [| 0.0; 2.0 * g; g + a31 + a32; g + a41 + a42 + a43; g + a51 + a52 + a53 + a54 |]
        [| [||]; [| g |]; [| a31; a32 |]; [| a41; a42; a43 |]; [| a51; a52; a53; a54 |] |]
        b (Array.map2 (-) b bHat)
        "Kværnø (2004), BIT Numerical Mathematics 44:489-502, ESDIRK 4(3)"
