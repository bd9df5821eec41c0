/// Kværnø's ESDIRK 5(4): seven stages, an explicit first stage, L-stable and stiffly accurate; the embedded solution
/// of order 4 is the sixth stage (A. Kværnø, "Singly diagonally implicit Runge–Kutta methods with an explicit first
/// stage", BIT Numerical Mathematics 44 (2004) 489–502; γ = 0.26 and the decimal coefficients of her table).
module NeuralOde.Core.Tableaux.Kvaerno5

open NeuralOde.Core

let private g = 0.26

let private a =
    [| [||]
       [| g |]
       [| 0.13; 0.84033320996790809 |]
       [| 0.22371961478320505; 0.47675532319799699; -0.06470895363112615 |]
       [| 0.16648564323248321; 0.10450018841591720; 0.03631482272098715; -0.13090704451073998 |]
       [| 0.13855640231268224; 0.0; -0.04245337201752043; 0.02446657898003141; 0.61943039072480676 |]
       [| 0.13659751177640291; 0.0; -0.05496908796538376; -0.04118626728321046; 0.62993304899016403; 0.06962479448202728 |] |]

/// Solution weights: the last stage's row (stiffly accurate); the embedded weights are the sixth stage's row.
let private b = Array.append a[6] [| g |]
let private bHat = Array.append a[5] [| g; 0.0 |]

/// The method as data, checked by ButcherTableau.createEsdirk (nodes: the sums of the full rows).
let tableau =
    ButcherTableau.createEsdirk "kvaerno5" 5 4 g
        (a |> Array.mapi (fun i row -> if i = 0 then 0.0 else Array.sum row + g))
        a b (Array.map2 (-) b bHat)
        "Kværnø (2004), BIT Numerical Mathematics 44:489-502, ESDIRK 5(4)"
