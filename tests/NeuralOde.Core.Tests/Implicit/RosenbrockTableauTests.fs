/// The Rosenbrock tableaux as data: rosenbrock23 and rodas4 build (their order conditions checked by
/// RosenbrockTableau.create), the next order fails, both are L-stable (R(z) = 1 + z bᵀ(I − z(α + Γ))⁻¹ 1 → 0 as
/// z → −∞, |R| ≤ 1 on the imaginary axis), and create refuses a bad coefficient, naming it.
module NeuralOde.Tests.Implicit.RosenbrockTableauTests

open Expecto
open MathNet.Numerics.LinearAlgebra
open NeuralOde.Core
open NeuralOde.Core.Tableaux
open NeuralOde.Tests.Support.Raises

/// R(z) of a Rosenbrock method: its stages applied to y' = λy with z = hλ.
let private stability (r: RosenbrockTableau) (z: System.Numerics.Complex) =
    let alpha, gamma, b, _ = RosenbrockTableau.gammaForm r
    let s = r.Stages
    let m = Matrix<System.Numerics.Complex>.Build.Dense(s, s, fun i j -> System.Numerics.Complex(alpha[i][j] + gamma[i][j], 0.0))
    let lhs = Matrix<System.Numerics.Complex>.Build.DenseIdentity(s) - z * m
    let ones = Vector<System.Numerics.Complex>.Build.Dense(s, System.Numerics.Complex.One)
    let x = lhs.Solve(ones)
    System.Numerics.Complex.One + z * (Vector<System.Numerics.Complex>.Build.DenseOfArray(b |> Array.map (fun v -> System.Numerics.Complex(v, 0.0))) * x)

let private rodasA =
    Rodas4.rosenbrock.A |> Array.map Array.copy

let private rebuild (a: float[][]) (c: float[][]) =
    let r = Rodas4.rosenbrock
    RosenbrockTableau.create "rodas4-test" r.Order r.EmbeddedOrder r.Gamma r.Nodes r.TimeWeights a c r.M r.E |> ignore

[<Tests>]
let tests =
    testList "Implicit/Rosenbrock tableaux" [
        for solver, r in [ Solvers.rosenbrock23, Rosenbrock23.rosenbrock; Solvers.rodas4, Rodas4.rosenbrock ] do
            test $"{solver.Name}: a Rosenbrock solver, implicit, with γ and order {r.Order}({r.EmbeddedOrder})" {
                Expect.isTrue solver.IsRosenbrock "IsRosenbrock"
                Expect.isTrue solver.IsImplicit "IsImplicit"
                Expect.equal solver.Gamma r.Gamma "Gamma = γ"
                Expect.equal solver.Order r.Order "order"
                Expect.equal solver.EmbeddedOrder (Some r.EmbeddedOrder) "embedded order"
                Expect.isFalse Solvers.kvaerno5.IsRosenbrock "an ESDIRK method is not"
                Expect.isFalse Solvers.dopri5.IsRosenbrock "an explicit method is not"
            }
            test $"{solver.Name}: claiming one order more fails (the stated orders are the method's own)" {
                // The conditions are checked up to order 4: rodas4's embedded weights, rosenbrock23's solution weights.
                let order, embedded, which = if r.Order < 4 then r.Order + 1, r.EmbeddedOrder, "solution" else r.Order, r.EmbeddedOrder + 1, "embedded"
                let e = raises<System.ArgumentException> (fun () ->
                    RosenbrockTableau.create r.Name order embedded r.Gamma r.Nodes r.TimeWeights r.A r.C r.M r.E |> ignore)
                Expect.stringContains e.Message $"{which} weights miss the order-" "names the weights and the condition"
            }
            test $"{solver.Name}: L-stable (R(−1e8) ≈ 0, |R(iy)| ≤ 1)" {
                let atInfinity = (stability r (System.Numerics.Complex(-1e8, 0.0))).Magnitude
                Expect.isLessThan atInfinity 1e-6 "R(z) → 0 as z → −∞"
                for y in [ 0.1; 1.0; 10.0; 100.0; 1e4 ] do
                    Expect.isLessThanOrEqual (stability r (System.Numerics.Complex(0.0, y))).Magnitude (1.0 + 1e-12) $"|R(i·{y})|"
            }
        test "create names a coefficient that is NaN" {
            let c = Rodas4.rosenbrock.C |> Array.map Array.copy
            c[2][1] <- nan
            let e = raises<System.ArgumentException> (fun () -> rebuild rodasA c)
            Expect.stringContains e.Message "c[2][1]" "names the coefficient"
            Expect.equal e.ParamName "c" "names the argument"
        }
        test "create refuses a coefficient off by 1e-6 (an order condition or a node no longer holds)" {
            let a = rodasA |> Array.map Array.copy
            a[3][1] <- a[3][1] + 1e-6
            let e = raises<System.ArgumentException> (fun () -> rebuild a Rodas4.rosenbrock.C)
            Expect.stringContains e.Message "rodas4-test" "names the tableau"
            Expect.stringContains e.Message "α[3]" "the node no longer matches the row sum"
        }
        test "create refuses rows of the wrong length and a non-positive γ" {
            let a = rodasA |> Array.map Array.copy
            a[2] <- [| 1.0 |]
            Expect.stringContains (raises<System.ArgumentException> (fun () -> rebuild a Rodas4.rosenbrock.C)).Message "row 2 of a has 1 entries, expected 2" "shape"
            let r = Rodas4.rosenbrock
            let e = raises<System.ArgumentException> (fun () -> RosenbrockTableau.create "neg" 4 3 -0.25 r.Nodes r.TimeWeights r.A r.C r.M r.E |> ignore)
            Expect.stringContains e.Message "γ = -0.25" "names γ"
        }
        test "ofGammaForm: ode23s's error weights of the wrong sign are not a third-order embedded method" {
            let d = 1.0 / (2.0 + sqrt 2.0)
            let e = raises<System.ArgumentException> (fun () ->
                RosenbrockTableau.ofGammaForm "ode23s-wrong" 2 3 d [| [||]; [| 0.5 |]; [| 0.0; 1.0 |] |]
                    [| [||]; [| -d |]; [| d * (4.0 + sqrt 2.0); -d * (6.0 + sqrt 2.0) |] |]
                    [| 0.0; 1.0; 0.0 |] [| -1.0 / 6.0; 4.0 / 3.0; -1.0 / 6.0 |] |> ignore)
            Expect.stringContains e.Message "embedded weights miss the order-3 condition" "names the failing condition"
        }
    ]
