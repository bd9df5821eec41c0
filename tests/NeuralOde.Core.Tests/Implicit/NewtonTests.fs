/// The implicit step's Newton iteration and its options (float64): gradients by autograd through the iterations
/// against central finite differences; per-row Jacobian blocks against the dense Jacobian on a batch; a Jacobian of
/// your own against autograd's; a solve backward in time against exp(A t); the named failures with their times.
module NeuralOde.Tests.Implicit.NewtonTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises
open NeuralOde.Tests.Implicit.StiffProblems

/// The Jacobian of van der Pol's field, written out: [[0, 1], [−2μ y1 y2 − 1, μ(1 − y1²)]].
let private vdpJacobian (mu: float) (_: float) (y: torch.Tensor) =
    let v = Tensors.toArray y
    Tensors.f64m [| [| 0.0; 1.0 |]; [| -2.0 * mu * v[0] * v[1] - 1.0; mu * (1.0 - v[0] * v[0]) |] |]

[<Tests>]
let tests =
    testList "Implicit/Newton" [
        test "kvaerno5: dL/dk and dL/dx0 on Robertson by autograd match central differences" {
            let control = adaptive 1e-10 1e-14
            use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
            use x0g = x0.clone().requires_grad_(true)
            use p = Tensors.f64 [| 1.0; 1.0; 1.0 |]
            use pg = p.clone().requires_grad_(true)
            let watch = System.Diagnostics.Stopwatch.StartNew()
            use loss = robertsonLoss Solvers.kvaerno5 control 10.0 x0g pg
            loss.backward()
            let autogradSeconds = watch.Elapsed.TotalSeconds
            let gp = Tensors.toArray pg.grad
            let gx = Tensors.toArray x0g.grad
            let fdp = centralDifferences 1e-5 (fun q -> (use l = robertsonLoss Solvers.kvaerno5 control 10.0 x0 q in l.ToDouble())) [| 1.0; 1.0; 1.0 |]
            // x0's differences at a tighter tolerance: y2 starts at 0, where steps of 1e-6 move the step sequence.
            let fdx = centralDifferences 1e-6 (fun x -> (use l = robertsonLoss Solvers.kvaerno5 (adaptive 1e-12 1e-16) 10.0 x p in l.ToDouble())) [| 1.0; 0.0; 0.0 |]
            let relative (a: float[]) (b: float[]) = Array.map2 (fun x y -> abs (x - y) / (abs y + 1e-3)) a b |> Array.max
            printfn $"Robertson gradients: dL/dp %A{gp} vs %A{fdp} (relative error {relative gp fdp:G3}); dL/dx0 %A{gx} vs %A{fdx} (relative error {relative gx fdx:G3}); forward + backward {autogradSeconds:F2} s"
            Expect.isLessThan (relative gp fdp) 1e-5 "dL/dp"
            Expect.isLessThan (relative gx fdx) 1e-5 "dL/dx0"
        }
        test "per-row Jacobian blocks on a batch of Robertson states agree with the dense Jacobian and with single solves" {
            use x0 = Tensors.f64m [| [| 1.0; 0.0; 0.0 |]; [| 0.5; 1e-5; 0.5 |]; [| 0.9; 0.0; 0.1 |]; [| 0.2; 2e-5; 0.8 |] |]
            use k = Tensors.f64 robertsonRates
            let control = adaptive 1e-8 1e-12
            let solveWith (solver: ButcherTableau) (x: torch.Tensor) =
                let watch = System.Diagnostics.Stopwatch.StartNew()
                let s = Ode.odeint (robertson k) x [| 0.0; 100.0 |] solver control
                s, watch.Elapsed.TotalSeconds
            // The dense solve first: it also warms up libtorch's kernels for the timing of the blocks.
            let dense, denseSeconds = solveWith Solvers.kvaerno5 x0
            use _ = dense
            let blocks, blockSeconds = solveWith (Solvers.withRowBlocks Solvers.kvaerno5) x0
            use _ = blocks
            use a = blocks.Final
            use b = dense.Final
            let diff = Tensors.maxAbsDiff a b
            printfn $"batch of 4 Robertson rows to t = 100: blocks {blocks.Statistics.AcceptedSteps} steps {blocks.Statistics.FunctionEvaluations} evaluations {blockSeconds:F2} s; dense {dense.Statistics.AcceptedSteps} steps {dense.Statistics.FunctionEvaluations} evaluations {denseSeconds:F2} s; largest difference {diff:G3}"
            Expect.isLessThan diff 1e-9 "same solution"
            // Each row alone, solved with its own steps, agrees to the tolerance.
            for r in 0L .. 3L do
                use row = x0.select(0L, r)
                use single = Ode.odeint (robertson k) row [| 0.0; 100.0 |] Solvers.kvaerno5 control
                use s = single.Final
                use br = a.select(0L, r)
                let e = Array.map2 (fun x y -> abs (x - y) / (abs y + 1e-10)) (Tensors.toArray br) (Tensors.toArray s) |> Array.max
                Expect.isLessThan e 1e-5 $"row {r}"
        }
        test "a Jacobian of your own gives autograd's solution without the evaluations autograd spends on it" {
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let times = [| 0.0; 500.0 |]
            use viaAutograd = Ode.odeint (vanDerPol 1000.0) x0 times Solvers.kvaerno5 (adaptive 1e-7 1e-9)
            let own = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(vdpJacobian 1000.0) } Solvers.kvaerno5
            use viaOwn = Ode.odeint (vanDerPol 1000.0) x0 times own (adaptive 1e-7 1e-9)
            use a = viaAutograd.Final
            use b = viaOwn.Final
            printfn $"van der Pol to 500: autograd Jacobian {viaAutograd.Statistics.FunctionEvaluations} evaluations, own {viaOwn.Statistics.FunctionEvaluations}; difference {Tensors.maxAbsDiff a b:G3}"
            Expect.isLessThan (Tensors.maxAbsDiff a b) 1e-6 "same solution"
            Expect.isLessThan viaOwn.Statistics.FunctionEvaluations viaAutograd.Statistics.FunctionEvaluations "no evaluations for J"
        }
        for solver in Solvers.implicitSolvers do
            test $"{solver.Name}: backward in time on a stiff linear system (eigenvalues +1 and +1000, from t = 1 to 0)" {
                let a = stiffLinear |> Array.map (Array.map (fun v -> -v))
                use x0 = Tensors.f64 [| 2.0; 0.0 |]
                use solution = Ode.odeint (Problems.linear a) x0 [| 1.0; 0.5; 0.0 |] solver (adaptive 1e-8 1e-10)
                use last = solution.Final
                let exact = Reference.linearSolution a [| 2.0; 0.0 |] 1.0 0.0
                let error = Array.map2 (fun x y -> abs (x - y)) (Tensors.toArray last) exact |> Array.max
                printfn $"{solver.Name} backward: error {error:G3}, {solution.Statistics.AcceptedSteps} accepted"
                Expect.isLessThan error 1e-6 "against exp(A (t − 1)) x0"
            }
        test "a Newton iteration that diverges fails with NewtonDivergence and the time" {
            // A Jacobian of the wrong sign: with steps of 0.1 the iteration on the stiff mode diverges.
            let wrong = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> Tensors.f64m (stiffLinear |> Array.map (Array.map (fun v -> -v)))) } Solvers.kvaerno3
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (Problems.linear stiffLinear) x0 [| 0.0; 1.0 |] wrong (StepControl.fixedStep 0.1) |> ignore)
            Expect.equal e.Failure OdeFailure.NewtonDivergence "named"
            Expect.equal e.Time 0.0 "at the first step"
            Expect.stringContains e.Message "t = 0" "the message has the time"
        }
        test "a singular Newton matrix fails with SingularMatrix and the time, after shrinking the step" {
            let nan = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> Tensors.f64m [| [| nan; 0.0 |]; [| 0.0; 1.0 |] |]) } Solvers.kvaerno5
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (Problems.linear stiffLinear) x0 [| 0.5; 1.0 |] nan (adaptive 1e-6 1e-9) |> ignore)
            Expect.equal e.Failure OdeFailure.SingularMatrix "named"
            Expect.equal e.Time 0.5 "at the start"
            Expect.stringContains e.Message "10 attempts" "after the step was shrunk"
        }
        test "fixed steps: an eigenvalue of J at 1/(hγ) makes I − hγJ singular, named with the step's time (not libtorch's error)" {
            // kvaerno3, h = 0.25: J = diag(1/(hγ), −1), so I − hγJ has a zero (or rounding-sized) first pivot: libtorch's
            // lu_factor refuses an exactly zero pivot, the pivot test catches a rounding-sized one; both are SingularMatrix.
            let h = 0.25
            for solver in [ Solvers.kvaerno3; Solvers.kvaerno5 ] do
                let pole = 1.0 / (h * solver.Gamma)
                let singular = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> Tensors.f64m [| [| pole; 0.0 |]; [| 0.0; -1.0 |] |]) } solver
                use x0 = Tensors.f64 [| 1.0; 1.0 |]
                let e = raises<OdeSolveException> (fun () -> Ode.odeint (Problems.linear stiffLinear) x0 [| 1.0; 2.0 |] singular (StepControl.fixedStep h) |> ignore)
                Expect.equal e.Failure OdeFailure.SingularMatrix $"{solver.Name}: named"
                Expect.equal e.Time 1.0 $"{solver.Name}: at the first step"
        }
        test "a Jacobian of the wrong shape is named" {
            let wrong = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> Tensors.f64 [| 1.0; 2.0; 3.0 |]) } Solvers.kvaerno5
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (Problems.linear stiffLinear) x0 [| 0.0; 1.0 |] wrong (adaptive 1e-6 1e-9) |> ignore)
            Expect.equal e.Failure OdeFailure.VectorFieldMismatch "named"
            Expect.stringContains e.Message "[2, 2]" "the shape it needs"
        }
    ]
