/// The linear stability of an explicit Runge–Kutta method, from its tableau: the stability function
/// R(z) = 1 + z bᵀ(I − zA)⁻¹1 (Hairer & Wanner, "Solving ODEs II", §IV.2) and the stretch of the negative real axis
/// where |R| ≤ 1 — how large hλ may be for a decaying mode λ < 0 before the method blows up, which is what the
/// stiffness switcher compares its estimate hρ with.
module internal NeuralOde.Core.StabilityRegion

/// R(z) for real z: the stages of y' = λy from y = 1 with z = hλ, g_i = 1 + z Σ_{j<i} a_ij g_j, R = 1 + z Σ b_i g_i.
let stabilityFunction (tableau: ButcherTableau) (z: float) =
    let s = tableau.Stages
    let g = Array.zeroCreate<float> s
    for i in 0 .. s - 1 do
        g[i] <- 1.0 + z * (Array.fold2 (fun acc a gj -> acc + a * gj) 0.0 tableau.A[i] g[0 .. i - 1])
    1.0 + z * Array.fold2 (fun acc b gi -> acc + b * gi) 0.0 tableau.B g

/// The largest x such that |R(−x')| ≤ 1 for every x' in [0, x] (to 1e-10): scanned in steps of 1e-3, then bisected.
/// An explicit method's boundary is finite (about 2.8 for rk4, 3.3 for dopri5).
let realBoundary (tableau: ButcherTableau) =
    if tableau.IsImplicit then invalidArg "tableau" $"'{tableau.Name}' is implicit: its stability region is unbounded."
    let stable x = abs (stabilityFunction tableau (-x)) <= 1.0 + 1e-12
    let step = 1e-3
    let mutable x = step
    while stable x && x < 1000.0 do x <- x + step
    let mutable lo, hi = x - step, x
    while hi - lo > 1e-10 do
        let mid = 0.5 * (lo + hi)
        if stable mid then lo <- mid else hi <- mid
    lo
