/// The Rosenbrock solvers (rosenbrock23, rodas4) on tensors, float64: fitted orders on a non-autonomous problem with
/// a known solution (the ∂f/∂t term); van der Pol (μ = 1000) and HIRES against SciPy's Radau at rtol = 1e-12
/// (Implicit/stiff_references.py); accepted steps against dopri5's on Robertson; a singular matrix named with its
/// time; per-row Jacobian blocks against the dense Jacobian; a Jacobian of your own; gradients by autograd through
/// the solver against central finite differences, with fixed and adaptive steps. (Robertson against Radau, the
/// fitted orders on the stiff linear system and solving backward in time run for every implicit solver in
/// StiffProblemTests, EsdirkConvergenceTests and NewtonTests.)
module NeuralOde.Tests.Implicit.RosenbrockTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises
open NeuralOde.Tests.Implicit.StiffProblems
open NeuralOde.Tests.Implicit.StiffProblemTests

let private adaptive = adaptiveWithin

let private rosenbrocks = [ Solvers.rosenbrock23; Solvers.rodas4 ]

/// SciPy Radau, rtol = 1e-12, atol = 1e-16: HIRES at t = 321.8122 from its standard initial state (Radau at rtol
/// 1e-10 agrees to 2e-12 relative; the IVP test set's reference agrees to 1e-13).
let private hiresReference =
    [| 0.0007371312573325447; 0.00014424857263161412; 5.888729740967166e-05; 0.0011756513432831079
       0.0023863561988306738; 0.0062389682527407295; 0.002849998395185323; 0.0028500016048146845 |]

/// The largest error of each component relative to its size.
let private relativeError (x: torch.Tensor) (reference: float[]) =
    Array.map2 (fun y r -> abs (y - r) / abs r) (Tensors.toArray x) reference |> Array.max

let private relative (a: float[]) (b: float[]) = Array.map2 (fun x y -> abs (x - y) / (abs y + 1e-3)) a b |> Array.max

/// dL/dp and dL/dx0 by autograd through the solve, and by central differences of the same solve (x0's at
/// `x0Control` with steps `x0Step`: under adaptive control a tighter tolerance and a larger step, since y2 starts at
/// 0, where small changes move the step sequence).
let private gradients (solver: ButcherTableau) (control: StepControl) (x0Control: StepControl) (x0Step: float) (tEnd: float) =
    use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
    use x0g = x0.clone().requires_grad_(true)
    use p = Tensors.f64 [| 1.0; 1.0; 1.0 |]
    use pg = p.clone().requires_grad_(true)
    use loss = robertsonLoss solver control tEnd x0g pg
    loss.backward()
    let gp, gx = Tensors.toArray pg.grad, Tensors.toArray x0g.grad
    let fdp = centralDifferences 1e-6 (fun q -> (use l = robertsonLoss solver control tEnd x0 q in l.ToDouble())) [| 1.0; 1.0; 1.0 |]
    let fdx = centralDifferences x0Step (fun x -> (use l = robertsonLoss solver x0Control tEnd x p in l.ToDouble())) [| 1.0; 0.0; 0.0 |]
    gp, fdp, gx, fdx

[<Tests>]
let tests =
    testList "Implicit/Rosenbrock" [
        for solver in rosenbrocks do
            test $"{solver.Name}: fitted order {solver.Order} on a non-autonomous nonlinear problem (the ∂f/∂t term)" {
                let tEnd = 1.0
                let ns = [ 8; 16; 32; 64 ]
                let errors =
                    ns |> List.map (fun n ->
                        use x = Tensors.f64 [| 1.0; 1.0 |]
                        use solution = Ode.odeint Problems.nonlinear x [| 0.0; tEnd |] solver (StepControl.steps n)
                        use final = solution.Final
                        Array.map2 (fun a b -> abs (a - b)) (Tensors.toArray final) (Problems.nonlinearExact tEnd) |> Array.max)
                    |> Array.ofList
                let slope = Tensors.logLogSlope (ns |> List.map (fun n -> tEnd / float n) |> Array.ofList) errors
                printfn $"{solver.Name} on the non-autonomous problem: fitted order {slope:F3}, errors %A{errors}"
                Expect.isLessThan (abs (slope - float solver.Order)) 0.3 $"fitted order {slope:F3}"
            }
        for solver, rtol, atol, bound in [ Solvers.rodas4, 1e-7, 1e-9, 1e-4; Solvers.rosenbrock23, 1e-6, 1e-8, 1e-2 ] do
            test $"{solver.Name}: van der Pol (μ = 1000) to t = 3000 against Radau (rtol {rtol})" {
                use x0 = Tensors.f64 [| 2.0; 0.0 |]
                use solution = Ode.odeint (vanDerPol 1000.0) x0 [| 0.0; 3000.0 |] solver (adaptive rtol atol 50_000)
                use last = solution.Final
                let error = relativeError last vdpReference[vdpReference.Length - 1]
                printfn $"{solver.Name} van der Pol to 3000 (rtol {rtol}, atol {atol}): relative error {error:G3}, {solution.Statistics.AcceptedSteps} accepted, {solution.Statistics.RejectedSteps} rejected, {solution.Statistics.FunctionEvaluations} evaluations"
                Expect.isLessThan error bound "the end point"
            }
        for solver, rtol, atol, bound in [ Solvers.kvaerno5, 1e-8, 1e-12, 1e-5; Solvers.rodas4, 1e-8, 1e-12, 1e-5; Solvers.rosenbrock23, 1e-6, 1e-10, 1e-3 ] do
            test $"{solver.Name}: HIRES at t = 321.8122 against Radau (rtol {rtol})" {
                use x0 = Tensors.f64 hiresInitial
                use solution = Ode.odeint hires x0 [| 0.0; hiresEnd |] solver (adaptive rtol atol 50_000)
                use last = solution.Final
                let error = relativeError last hiresReference
                printfn $"{solver.Name} HIRES (rtol {rtol}, atol {atol}): relative error {error:G3}, {solution.Statistics.AcceptedSteps} accepted, {solution.Statistics.RejectedSteps} rejected, {solution.Statistics.FunctionEvaluations} evaluations"
                Expect.isLessThan error bound "every species at the end time"
            }
        for rtol in [ 1e-2; 1e-3 ] do
            test $"rosenbrock23 at a loose tolerance (rtol {rtol}): Robertson to 1e5 and van der Pol to 3000 in few steps" {
                use k = Tensors.f64 robertsonRates
                use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
                use robertsonSolution = Ode.odeint (robertson k) x0 [| 0.0; 1e5 |] Solvers.rosenbrock23 (adaptive rtol (rtol * 1e-6) 10_000)
                use last = robertsonSolution.Final
                let robertsonError = relativeError last robertsonReference[robertsonReference.Length - 1]
                use v0 = Tensors.f64 [| 2.0; 0.0 |]
                use vdpSolution = Ode.odeint (vanDerPol 1000.0) v0 [| 0.0; 3000.0 |] Solvers.rosenbrock23 (adaptive rtol (rtol * 1e-2) 10_000)
                use vdpLast = vdpSolution.Final
                let vdpError = relativeError vdpLast vdpReference[vdpReference.Length - 1]
                printfn $"rosenbrock23 rtol {rtol}: Robertson relative error {robertsonError:G3} in {robertsonSolution.Statistics.AcceptedSteps} steps ({robertsonSolution.Statistics.RejectedSteps} rejected); van der Pol {vdpError:G3} in {vdpSolution.Statistics.AcceptedSteps} steps ({vdpSolution.Statistics.RejectedSteps} rejected)"
                Expect.isLessThan robertsonError (10.0 * rtol) "Robertson at 1e5"
                Expect.isLessThan vdpError (30.0 * rtol) "van der Pol at 3000"
                Expect.isLessThan robertsonSolution.Statistics.AcceptedSteps 300 "Robertson in few steps"
                Expect.isLessThan vdpSolution.Statistics.AcceptedSteps 3000 "van der Pol in few steps"
            }
        test "rodas4: Robertson to t = 1e5 in over 100 times fewer accepted steps than dopri5 has in its budget" {
            use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
            use k = Tensors.f64 robertsonRates
            let control = adaptive 1e-6 1e-10 100_000
            use ours = Ode.odeint (robertson k) x0 [| 0.0; 1e5 |] Solvers.rodas4 control
            let a = ours.Statistics.AcceptedSteps
            // dopri5 with a budget of 100 times rodas4's steps must run out of it long before t = 1e5.
            let budget = 100 * a
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (robertson k) x0 [| 0.0; 1e5 |] Solvers.dopri5 (adaptive 1e-6 1e-10 budget) |> ignore)
            printfn $"Robertson to 1e5 (rtol 1e-6, atol 1e-10): rodas4 {a} accepted, {ours.Statistics.FunctionEvaluations} evaluations; dopri5 ran out of {budget} steps at t = {e.Time:G4}"
            Expect.equal e.Failure OdeFailure.MaxStepsExceeded "dopri5 runs out of steps"
            Expect.isLessThan e.Time 1e4 "far before the end"
        }
        for solver in rosenbrocks do
            test $"{solver.Name}: 300 fixed steps keep a bounded number of tensors alive, and nothing once disposed" {
                // Live tensors at every evaluation of f (stages, the Jacobian's, ∂f/∂t's) over the middle of the solve:
                // they move within a step, and would climb with the steps if a step's tensor (J, ∂f/∂t) leaked.
                let counts = ResizeArray<int64>()
                let f: VectorField = fun _ x ->
                    counts.Add(int64 DisposeScopeManager.Statistics.ThreadTotalLiveCount)
                    x.neg()
                let before = DisposeScopeManager.Statistics.ThreadTotalLiveCount
                do
                    use x = Tensors.f64 [| 1.0; 2.0 |]
                    use solution = Ode.odeint f x [| 0.0; 1.0 |] solver (StepControl.steps 300)
                    ()
                let left = DisposeScopeManager.Statistics.ThreadTotalLiveCount - before
                let middle = counts.ToArray()[counts.Count / 10 .. counts.Count - counts.Count / 10]
                Expect.isLessThanOrEqual (Array.max middle - Array.min middle) 30L $"the live count over {counts.Count} evaluations"
                Expect.equal left 0L "nothing left alive"
            }
        test "a NaN Jacobian fails with SingularMatrix and the time, after shrinking the step MaxFailures times" {
            let nan = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> Tensors.f64m [| [| nan; 0.0 |]; [| 0.0; 1.0 |] |]) } Solvers.rodas4
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (Problems.linear stiffLinear) x0 [| 0.5; 1.0 |] nan (adaptive 1e-6 1e-9 1000) |> ignore)
            Expect.equal e.Failure OdeFailure.SingularMatrix "named"
            Expect.equal e.Time 0.5 "at the start"
            Expect.stringContains e.Message "t = 0.5" "the message has the time"
            Expect.stringContains e.Message "10 attempts" "after the step was shrunk"
        }
        test "fixed steps: an eigenvalue of J at 1/(hγ) makes the matrix singular, named with the step's time" {
            // rosenbrock23, h = 0.25: 1/(hγ) = 4(2 + √2); J = diag(that, −1) at every step, so the first step fails.
            let h = 0.25
            let pole = 1.0 / (h * Solvers.rosenbrock23.Gamma)
            let singular = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> Tensors.f64m [| [| pole; 0.0 |]; [| 0.0; -1.0 |] |]) } Solvers.rosenbrock23
            use x0 = Tensors.f64 [| 1.0; 1.0 |]
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (Problems.linear stiffLinear) x0 [| 1.0; 2.0 |] singular (StepControl.fixedStep h) |> ignore)
            Expect.equal e.Failure OdeFailure.SingularMatrix "named"
            Expect.equal e.Time 1.0 "at the first step"
            Expect.stringContains e.Message "fixed steps of h = 0.25" "says why it did not shrink"
        }
        test "rodas4: per-row Jacobian blocks on a batch of Robertson states agree with the dense Jacobian" {
            use x0 = Tensors.f64m [| [| 1.0; 0.0; 0.0 |]; [| 0.5; 1e-5; 0.5 |]; [| 0.9; 0.0; 0.1 |]; [| 0.2; 2e-5; 0.8 |] |]
            use k = Tensors.f64 robertsonRates
            let control = adaptive 1e-8 1e-12 20_000
            use dense = Ode.odeint (robertson k) x0 [| 0.0; 100.0 |] Solvers.rodas4 control
            use blocks = Ode.odeint (robertson k) x0 [| 0.0; 100.0 |] (Solvers.withRowBlocks Solvers.rodas4) control
            use a = blocks.Final
            use b = dense.Final
            printfn $"rodas4 batch of 4 Robertson rows to t = 100: blocks {blocks.Statistics.AcceptedSteps} steps, dense {dense.Statistics.AcceptedSteps} steps, largest difference {Tensors.maxAbsDiff a b:G3}"
            Expect.equal blocks.Statistics.AcceptedSteps dense.Statistics.AcceptedSteps "the same steps"
            Expect.isLessThan (Tensors.maxAbsDiff a b) 1e-12 "the same solution"
        }
        test "rodas4: a Jacobian of your own gives autograd's solution with fewer evaluations" {
            let jacobian (_: float) (y: torch.Tensor) =
                let v = Tensors.toArray y
                Tensors.f64m [| [| 0.0; 1.0 |]; [| -2000.0 * v[0] * v[1] - 1.0; 1000.0 * (1.0 - v[0] * v[0]) |] |]
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            use viaAutograd = Ode.odeint (vanDerPol 1000.0) x0 [| 0.0; 500.0 |] Solvers.rodas4 (adaptive 1e-7 1e-9 20_000)
            use viaOwn = Ode.odeint (vanDerPol 1000.0) x0 [| 0.0; 500.0 |] (Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some jacobian } Solvers.rodas4) (adaptive 1e-7 1e-9 20_000)
            use a = viaAutograd.Final
            use b = viaOwn.Final
            Expect.isLessThan (Tensors.maxAbsDiff a b) 1e-9 "same solution"
            Expect.isLessThan viaOwn.Statistics.FunctionEvaluations viaAutograd.Statistics.FunctionEvaluations "no evaluations for J"
        }
        // Under adaptive control the differences also follow the step sequence, which moves with x0: x0's agree to the
        // scale of those moves (about 1e-5 absolute on dL/dx0 ≈ 3.5e-3), the rates' far better.
        for solver, rtol, bound in [ Solvers.rosenbrock23, 1e-7, 5e-3; Solvers.rodas4, 1e-9, 2e-3 ] do
            // Fixed steps over [0, 0.1] (h = 1e-3): from y2 = 0, where J has no stiff mode yet, longer fixed steps
            // overshoot and blow up.
            for label, control, x0Control, x0Step, tEnd, tolerance in
                    [ "100 fixed steps", StepControl.steps 100, StepControl.steps 100, 1e-7, 0.1, 1e-6
                      $"adaptive, rtol {rtol}", adaptive rtol (rtol * 1e-4) 100_000, adaptive (rtol * 1e-2) (rtol * 1e-6) 100_000, 1e-5, 1.0, bound ] do
                test $"{solver.Name} ({label}): dL/dk and dL/dx0 on Robertson to t = {tEnd} by autograd match central differences" {
                    let gp, fdp, gx, fdx = gradients solver control x0Control x0Step tEnd
                    printfn $"{solver.Name} ({label}) Robertson gradients: dL/dp %A{gp} vs %A{fdp} ({relative gp fdp:G3}); dL/dx0 %A{gx} vs %A{fdx} ({relative gx fdx:G3})"
                    Expect.isLessThan (relative gp fdp) tolerance "dL/dp"
                    Expect.isLessThan (relative gx fdx) tolerance "dL/dx0"
                }
    ]
