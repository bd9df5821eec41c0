/// What the implicit solvers must not do silently, float64: the adjoint systems' Newton matrices against dense
/// solves with a non-symmetric Jacobian (a J for Jᵀ would pass every gradient test, only slowing Newton); the
/// refusals of combinations that would give a wrong Jacobian or a wrong field without a word.
module NeuralOde.Tests.Implicit.ImplicitRefusalTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Implicit
open NeuralOde.Core.Internal
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises
open NeuralOde.Tests.Implicit.StiffProblems

/// A non-symmetric J [2, 2] as one block [1, 2, 2].
let private jacobian = [| [| -3.0; 7.0 |]; [| 0.5; -200.0 |] |]

[<Tests>]
let tests =
    testList "Implicit/refusals" [
        test "the costate's and the backsolve's Newton matrices solve I + hγJᵀ on a, I − hγJ on x, the identity on μ" {
            let hGamma = -0.3    // a backward step: h < 0
            use j = (Tensors.f64m jacobian).reshape(1L, 2L, 2L)
            use eye = torch.eye(2L, dtype = torch.float64)
            use jt = j[0L].t()
            use mA = TensorOps.addScaled eye jt hGamma
            use mX = TensorOps.addScaled eye j[0L] (-hGamma)
            // The costate [a (2); μ (3)].
            use costate = NewtonMatrix.ofCostate (fun _ _ -> j.clone()) 2L
            use r = Tensors.f64 [| 1.0; -2.0; 3.0; 4.0; 5.0 |]
            costate.Evaluate((fun _ x -> x), 0.0, r)
            Expect.isTrue (costate.Factor hGamma) "factorised"
            use solved = costate.Solve r
            use expectedA = torch.linalg.solve(mA, r.narrow(0L, 0L, 2L))
            Expect.isLessThan (Tensors.maxAbsDiff (solved.narrow(0L, 0L, 2L)) expectedA) 1e-14 "a: (I + hγJᵀ)⁻¹ r_a"
            Expect.isLessThan (Tensors.maxAbsDiff (solved.narrow(0L, 2L, 3L)) (r.narrow(0L, 2L, 3L))) 1e-300 "μ: unchanged"
            // The backsolve's [x (2); a (2); μ (1)].
            use augmented = NewtonMatrix.ofAugmented (fun _ _ -> j.clone()) 2L
            augmented.Evaluate((fun _ x -> x), 0.0, r)
            Expect.isTrue (augmented.Factor hGamma) "factorised"
            use solvedAugmented = augmented.Solve r
            use expectedX = torch.linalg.solve(mX, r.narrow(0L, 0L, 2L))
            use expectedA2 = torch.linalg.solve(mA, r.narrow(0L, 2L, 2L))
            Expect.isLessThan (Tensors.maxAbsDiff (solvedAugmented.narrow(0L, 0L, 2L)) expectedX) 1e-14 "x: (I − hγJ)⁻¹ r_x"
            Expect.isLessThan (Tensors.maxAbsDiff (solvedAugmented.narrow(0L, 2L, 2L)) expectedA2) 1e-14 "a: (I + hγJᵀ)⁻¹ r_a"
            Expect.isLessThan (Tensors.maxAbsDiff (solvedAugmented.narrow(0L, 4L, 1L)) (r.narrow(0L, 4L, 1L))) 1e-300 "μ: unchanged"
        }
        test "a running loss with per-row Jacobian blocks is refused (the state and its integral are one vector)" {
            use x0 = Tensors.f64m [| [| 1.0; 0.0; 0.0 |]; [| 0.5; 0.0; 0.5 |] |]
            use k = Tensors.f64 robertsonRates
            let problem = OdeProblem.create (robertson k) x0 [| 0.0; 1.0 |] |> OdeProblem.withIntegralLoss (fun _ x -> x.square().sum())
            let e = raises<System.ArgumentException> (fun () -> Ode.solve problem (Solvers.withRowBlocks Solvers.kvaerno5) (adaptive 1e-6 1e-9) |> ignore)
            Expect.equal e.ParamName "solver" "named"
            Expect.stringContains e.Message "rowBlocks" "says which option"
        }
        test "a split problem whose field was replaced after createSplit is refused by the IMEX solvers" {
            use x0 = Tensors.f64 [| 1.0; 0.0 |]
            let split = OdeProblem.createSplit (Problems.linear Problems.oscillatory) (Problems.linear stiffLinear) x0 [| 0.0; 1.0 |]
            let replaced = { split with VectorField = Problems.linear Problems.oscillatory }
            let e = raises<System.ArgumentException> (fun () -> Ode.solve replaced Solvers.kenCarp4 (adaptive 1e-6 1e-9) |> ignore)
            Expect.stringContains e.Message "createSplit" "says how to build it"
            // A copy that keeps the field keeps the split.
            use kept = Ode.solve { split with Times = [| 0.0; 0.5 |] } Solvers.kenCarp4 (adaptive 1e-6 1e-9)
            Expect.equal kept.Times.Length 2 "solved"
        }
        test "a hypersolver on an implicit method, and the infinite-dimensional gradient with one, are refused by name" {
            use g = torch.nn.Linear(4L, 2L)
            let e = raises<System.ArgumentException> (fun () -> Hypersolver(Solvers.kvaerno3, g) |> ignore)
            Expect.equal e.ParamName "baseSolver" "named"
            use w = Tensors.f64 [| 1.0 |]
            use x0 = Tensors.f64 [| 1.0; 0.0 |]
            use gT = Tensors.f64 [| 1.0; 1.0 |]
            let field: VectorField = fun _ x -> x.neg()
            let e2 =
                raises<System.ArgumentException> (fun () ->
                    InfiniteDimensionalGradient.along field (fun () -> w) x0 (0.0, 1.0) gT None [| 0.5 |] Solvers.kvaerno5 (adaptive 1e-6 1e-9) |> ignore)
            Expect.equal e2.ParamName "solver" "named"
        }
    ]
