/// Hairer & Wanner's RODAS: a Rosenbrock method of order 4 with an embedded solution of order 3, six stages,
/// L-stable and stiffly accurate (the last two stages evaluate f at t + h; the solution is the sixth stage's argument
/// plus u6, the embedded one that argument, so the error estimate is u6). E. Hairer and G. Wanner, "Solving ODEs II",
/// 2nd ed., Springer 1996, §VI.4; the transformed coefficients (a_ij, c_ij, γ_i) of their Fortran code RODAS (rodas.f,
/// subroutine ROCOE, METH = 1), as printed there to 16 digits.
module NeuralOde.Core.Tableaux.Rodas4

open NeuralOde.Core

let private a5 = [| 1.221224509226641; 6.019134481288629; 12.53708332932087; -0.6878860361058950 |]

let private a =
    [| [||]
       [| 1.544 |]
       [| 0.9466785280815826; 0.2557011698983284 |]
       [| 3.314825187068521; 2.896124015972201; 0.9986419139977817 |]
       a5
       Array.append a5 [| 1.0 |] |]

let private c =
    [| [||]
       [| -5.6688 |]
       [| -2.430093356833875; -0.2063599157091915 |]
       [| -0.1073529058151375; -9.594562251023355; -20.47028614809616 |]
       [| 7.496443313967647; -10.24680431464352; -33.99990352819905; 11.70890893206160 |]
       [| 8.083246795921522; -7.981132988064893; -31.52159432874371; 16.31930543123136; -6.058818238834054 |] |]

/// The method as data (γ = 1/4), checked by RosenbrockTableau.create.
let rosenbrock =
    RosenbrockTableau.create "rodas4" 4 3 0.25
        [| 0.0; 0.386; 0.21; 0.63; 1.0; 1.0 |]
        [| 0.25; -0.1043; 0.1035; -0.0362; 0.0; 0.0 |]
        a c (Array.append a5 [| 1.0; 1.0 |]) [| 0.0; 0.0; 0.0; 0.0; 0.0; 1.0 |]

/// The solver.
let tableau =
    ButcherTableau.createRosenbrock rosenbrock "Hairer & Wanner (1996), Solving ODEs II §VI.4, RODAS (rodas.f, METH = 1)"
