/// Dormand–Prince 5(4), FSAL, with Hairer's fourth-order continuous extension (Dormand & Prince 1980,
/// "A family of embedded Runge–Kutta formulae", J. Comput. Appl. Math. 6(1); dense output from Hairer, Nørsett &
/// Wanner, "Solving ODEs I", §II.6, as in their code DOPRI5). The default adaptive solver of torchdiffeq and torchdyn.
module NeuralOde.Core.Tableaux.Dopri5

open NeuralOde.Core

let private b = [| 35.0 / 384.0; 0.0; 500.0 / 1113.0; 125.0 / 192.0; -2187.0 / 6784.0; 11.0 / 84.0; 0.0 |]
let private bHat = [| 5179.0 / 57600.0; 0.0; 7571.0 / 16695.0; 393.0 / 640.0; -92097.0 / 339200.0; 187.0 / 2100.0; 1.0 / 40.0 |]

/// Hairer's coefficients d_i of the θ²(1−θ)² term of the continuous extension.
let private d =
    [| -12715105075.0 / 11282082432.0; 0.0; 87487479700.0 / 32700410799.0; -10690763975.0 / 1880347072.0
       701980252875.0 / 199316789632.0; -1453857185.0 / 822651844.0; 69997945.0 / 29380423.0 |]

/// b_i(θ) = θ b_i + θ(1−θ)(δ_i1 − b_i) + θ²(1−θ)(2b_i − δ_i1 − δ_i7) + θ²(1−θ)² d_i: Hairer's form
/// y0 + θ(Δ + (1−θ)(hk1 − Δ + θ(2Δ − hk1 − hk7 + (1−θ)hΣd_i k_i))) with Δ = y1 − y0, written per stage.
let private weights (theta: float) =
    let u = 1.0 - theta
    Array.init 7 (fun i ->
        let first = if i = 0 then 1.0 else 0.0
        let last = if i = 6 then 1.0 else 0.0
        theta * b[i] + theta * u * (first - b[i]) + theta * theta * u * (2.0 * b[i] - first - last)
        + theta * theta * u * u * d[i])

/// The method as data, checked by ButcherTableau.create.
let tableau =
    ButcherTableau.create "dopri5" 5 (Some 4)
        [| 0.0; 1.0 / 5.0; 3.0 / 10.0; 4.0 / 5.0; 8.0 / 9.0; 1.0; 1.0 |]
        [| [||]
           [| 1.0 / 5.0 |]
           [| 3.0 / 40.0; 9.0 / 40.0 |]
           [| 44.0 / 45.0; -56.0 / 15.0; 32.0 / 9.0 |]
           [| 19372.0 / 6561.0; -25360.0 / 2187.0; 64448.0 / 6561.0; -212.0 / 729.0 |]
           [| 9017.0 / 3168.0; -355.0 / 33.0; 46732.0 / 5247.0; 49.0 / 176.0; -5103.0 / 18656.0 |]
           b[0..5] |]
        b (Some(Array.map2 (-) b bHat)) (DenseOutput.Continuous weights)
        "Dormand & Prince (1980), J. Comput. Appl. Math. 6(1):19-26; dense output: Hairer, Nørsett & Wanner, Solving ODEs I, §II.6"
