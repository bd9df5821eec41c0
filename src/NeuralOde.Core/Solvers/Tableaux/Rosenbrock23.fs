/// Shampine & Reichelt's Rosenbrock 2(3), MATLAB's ode23s: three stages, order 2, L-stable, with a third-order
/// embedded solution for the error estimate (L. F. Shampine and M. W. Reichelt, "The MATLAB ODE Suite", SIAM J. Sci.
/// Comput. 18 (1997) 1–22, §3: d = 1/(2 + √2), e32 = 6 + √2). Their step, W = I − hdJ, k1 = W⁻¹(f0 + hd ∂f/∂t),
/// k2 = W⁻¹(f(t + h/2, y + hk1/2) − k1) + k1, y1 = y + hk2, k3 = W⁻¹(f(t + h, y1) − e32(k2 − f1) − 2(k1 − f0) + hd ∂f/∂t),
/// error h(k1 − 2k2 + k3)/6, is written here in the general form (Hairer & Wanner §IV.7, eq. (7.4)): eliminating
/// f0 and f1 by the stage equations gives Γ below, and the estimate is y1 − ŷ1 with ŷ1 = y + h(k1 + 4k2 + k3)/6.
module NeuralOde.Core.Tableaux.Rosenbrock23

open NeuralOde.Core

let private d = 1.0 / (2.0 + sqrt 2.0)
let private e32 = 6.0 + sqrt 2.0

/// The method as data: α_ij, γ_ij (the diagonal d), b and b̂ of the k_i, transformed and checked.
let rosenbrock =
    RosenbrockTableau.ofGammaForm "rosenbrock23" 2 3 d
        [| [||]; [| 0.5 |]; [| 0.0; 1.0 |] |]
        [| [||]; [| -d |]; [| d * (e32 - 2.0); -d * e32 |] |]
        [| 0.0; 1.0; 0.0 |]
        [| 1.0 / 6.0; 2.0 / 3.0; 1.0 / 6.0 |]

/// The solver.
let tableau =
    ButcherTableau.createRosenbrock rosenbrock "Shampine & Reichelt (1997), SIAM J. Sci. Comput. 18:1-22, ode23s (Rosenbrock 2(3))"
