/// The implicit tableaux as data: Butcher's order conditions (every rooted tree up to the stated order) for the main
/// and the embedded weights over the full matrix A (strictly lower part plus the diagonal γ), and that the next order
/// fails (the stated orders are the methods' own); stiff accuracy, the explicit first stage, one γ on the diagonal,
/// L-stability of the stability function; and createEsdirk refusing an inconsistent method.
module NeuralOde.Tests.Implicit.EsdirkTableauTests

open Expecto
open MathNet.Numerics.LinearAlgebra
open NeuralOde.Core
open NeuralOde.Tests.Support.Raises

/// A rooted tree as the list of its root's subtrees.
type Tree = Node of Tree list

let rec order (Node children) = 1 + List.sumBy order children
let rec density (Node children as t) = float (order t) * List.fold (fun acc c -> acc * density c) 1.0 children

/// Every rooted tree with n vertices (as sorted lists of subtrees, each tree once).
let rec trees (n: int) : Tree list =
    if n = 1 then [ Node [] ]
    else
        // Multisets of subtrees whose orders sum to n − 1, subtrees in a canonical (non-increasing) order.
        let rec forests (m: int) (bound: (int * int) option) : Tree list list =
            if m = 0 then [ [] ]
            else
                [ for k in 1 .. m do
                    for index, t in List.indexed (trees k) do
                        if bound.IsNone || compare (k, index) bound.Value <= 0 then
                            for rest in forests (m - k) (Some(k, index)) do
                                yield t :: rest ]
        forests (n - 1) None |> List.map Node

/// The full s × s coefficient matrix: the strictly lower part and γ on the diagonal of stages 2 … s.
let fullMatrix (t: ButcherTableau) =
    Array.init t.Stages (fun i -> Array.init t.Stages (fun j -> if j < i then t.A[i][j] elif j = i && i > 0 then t.Gamma else 0.0))

/// Φ_i(tree) for every stage i: 1 for the root alone, Π over subtrees of Σ_j a_ij Φ_j(subtree).
let rec private stageWeights (a: float[][]) (Node children) : float[] =
    let s = a.Length
    children |> List.fold (fun (acc: float[]) child ->
        let phi = stageWeights a child
        Array.init s (fun i -> acc[i] * Array.fold2 (fun sum aij pj -> sum + aij * pj) 0.0 a[i] phi)) (Array.create s 1.0)

/// The largest residual |bᵀΦ(tree) − 1/γ(tree)| over the trees of order n.
let private residual (a: float[][]) (b: float[]) (n: int) =
    trees n |> List.map (fun t -> abs (Array.fold2 (fun sum bi pi -> sum + bi * pi) 0.0 b (stageWeights a t) - 1.0 / density t)) |> List.max

/// R(z) = 1 + z bᵀ (I − zA)⁻¹ 1, the stability function.
let private stability (t: ButcherTableau) (z: System.Numerics.Complex) =
    let s = t.Stages
    let a = Matrix<System.Numerics.Complex>.Build.DenseOfRowArrays(fullMatrix t |> Array.map (Array.map (fun x -> System.Numerics.Complex(x, 0.0))))
    let m = Matrix<System.Numerics.Complex>.Build.DenseIdentity(s) - z * a
    let ones = Vector<System.Numerics.Complex>.Build.Dense(s, System.Numerics.Complex.One)
    let b = Vector<System.Numerics.Complex>.Build.DenseOfArray(t.B |> Array.map (fun x -> System.Numerics.Complex(x, 0.0)))
    System.Numerics.Complex.One + z * b.DotProduct(m.Solve(ones))

[<Tests>]
let tests =
    testList "Implicit/tableaux" [
        test "the trees up to order 6 are 1, 1, 2, 4, 9, 20 (Butcher's count)" {
            Expect.equal ([ 1 .. 6 ] |> List.map (fun n -> (trees n).Length)) [ 1; 1; 2; 4; 9; 20 ] "rooted trees"
        }
        // The ESDIRK methods (the Rosenbrock ones have their own checks: RosenbrockTableauTests).
        for t in Solvers.implicitSolvers |> List.filter (fun t -> not t.IsRosenbrock) do
            let a = fullMatrix t
            let bHat = Array.map2 (-) t.B t.E.Value
            let embedded = t.EmbeddedOrder.Value
            test $"{t.Name}: order conditions up to order {t.Order}, not {t.Order + 1}" {
                for n in 1 .. t.Order do
                    Expect.isLessThan (residual a t.B n) 1e-12 $"the trees of order {n}"
                Expect.isGreaterThan (residual a t.B (t.Order + 1)) 1e-4 $"order {t.Order + 1} fails"
            }
            test $"{t.Name}: the embedded weights have order {embedded}, not {embedded + 1}" {
                for n in 1 .. embedded do
                    Expect.isLessThan (residual a bHat n) 1e-12 $"the trees of order {n}"
                Expect.isGreaterThan (residual a bHat (embedded + 1)) 1e-4 $"order {embedded + 1} fails"
            }
            test $"{t.Name}: explicit first stage, one γ on the diagonal, stiffly accurate" {
                Expect.equal t.C[0] 0.0 "c_1 = 0"
                Expect.isEmpty t.A[0] "no coefficients in the first row"
                Expect.isGreaterThan t.Gamma 0.0 "γ > 0"
                Expect.isTrue t.IsImplicit "implicit"
                Expect.isFalse t.Fsal "not FSAL (the last stage is implicit)"
                for i in 1 .. t.Stages - 1 do
                    Expect.floatClose Accuracy.veryHigh (Array.sum a[i]) t.C[i] $"row {i} of the full A sums to c_{i}"
                // Stiffly accurate: b is the last row of the full A, so y1 is the last stage and c_s = 1.
                Array.iter2 (fun x y -> Expect.floatClose Accuracy.veryHigh x y "b = last row of A") t.B a[t.Stages - 1]
                Expect.floatClose Accuracy.veryHigh t.C[t.Stages - 1] 1.0 "c_s = 1"
                // Kværnø's embedded solution is the second-to-last stage (Kennedy & Carpenter's is not a stage).
                if not t.IsImex then
                    Array.iter2 (fun x y -> Expect.floatClose Accuracy.veryHigh x y "b̂ = row s − 1 of A") bHat a[t.Stages - 2]
            }
            test $"{t.Name}: L-stable (|R| ≤ 1 on the imaginary axis, R(−∞) = 0)" {
                for y in [ 0.01; 0.1; 0.5; 1.0; 2.0; 5.0; 10.0; 100.0; 1e4 ] do
                    let r = stability t (System.Numerics.Complex(0.0, y))
                    Expect.isLessThanOrEqual r.Magnitude (1.0 + 1e-12) $"|R({y}i)|"
                Expect.isLessThan (stability t (System.Numerics.Complex(-1e8, 0.0))).Magnitude 1e-6 "R(−1e8)"
            }
        test "byName finds the implicit solvers" {
            Expect.equal (Solvers.byName "Kvaerno5").Name "kvaerno5" "case-insensitive"
        }
        test "createEsdirk refuses a row that does not sum to its node, and a non-positive γ" {
            let ex =
                raises<System.ArgumentException> (fun () ->
                    ButcherTableau.createEsdirk "broken" 2 1 0.5 [| 0.0; 1.0; 1.0 |] [| [||]; [| 0.4 |]; [| 0.25; 0.25 |] |]
                        [| 0.25; 0.25; 0.5 |] [| 0.0; -0.25; 0.25 |] "none" |> ignore)
            Expect.stringContains ex.Message "row 1 of A" "names the failing row"
            let ex = raises<System.ArgumentException> (fun () ->
                ButcherTableau.createEsdirk "broken" 2 1 0.0 [| 0.0; 1.0 |] [| [||]; [| 1.0 |] |] [| 0.5; 0.5 |] [| 0.5; -0.5 |] "none" |> ignore)
            Expect.stringContains ex.Message "γ = 0" "names γ"
        }
        test "withNewton refuses an explicit solver and options out of range" {
            raises<System.ArgumentException> (fun () -> Solvers.withNewton NewtonOptions.defaults Solvers.dopri5 |> ignore) |> ignore
            let ex = raises<System.ArgumentOutOfRangeException> (fun () -> Solvers.withNewton { NewtonOptions.defaults with Tolerance = 2.0 } Solvers.kvaerno5 |> ignore)
            Expect.equal ex.ParamName "tolerance" "names the option"
        }
    ]
