/// The implicit solvers on stiff problems (float64) against reference values from SciPy's Radau at rtol = 1e-12
/// (Implicit/stiff_references.py computes them): Robertson's reaction to t = 1e5 and van der Pol's oscillator with
/// μ = 1000 to t = 3000; accepted steps against Dopri5's on the same problem and tolerance (Dopri5 under a step
/// budget, so it cannot hang); per-row Jacobian blocks against the dense Jacobian; a Jacobian of your own; solving
/// backward in time; the named failures with their times.
module NeuralOde.Tests.Implicit.StiffProblemTests

open System.Diagnostics
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises
open NeuralOde.Tests.Implicit.StiffProblems

/// SciPy Radau, rtol = 1e-12, atol = (1e-14, 1e-18, 1e-14): Robertson at t = 1, 10, …, 1e5 from (1, 0, 0).
let robertsonTimes = [| 0.0; 1.0; 10.0; 100.0; 1000.0; 1e4; 1e5 |]
let robertsonReference =
    [| [| 0.9664597373330008; 3.074626578578614e-05; 0.03350951640121081 |]
       [| 0.8413699238414648; 1.623390937990529e-05; 0.15861384224915326 |]
       [| 0.6172348823960814; 6.153591274639731e-06; 0.3827589640126413 |]
       [| 0.33687453066068473; 2.0137023182611034e-06; 0.6631234556369959 |]
       [| 0.10730042853779959; 4.800166972571525e-07; 0.8926990914455043 |]
       [| 0.017865921142126772; 7.274751468447649e-08; 0.9821340061103568 |] |]

/// The largest error over the outputs and components in units of the tolerance: |y − ref| / (rtol·|ref| + atol).
let private scaledError (states: torch.Tensor) (reference: float[][]) (rtol: float) (atol: float) =
    reference |> Array.mapi (fun k row ->
        use s = states.select(0L, int64 (k + 1))
        Array.map2 (fun y r -> abs (y - r) / (rtol * abs r + atol)) (Tensors.toArray s) row |> Array.max) |> Array.max

let private robertsonSolve (solver: ButcherTableau) (x0: torch.Tensor) (times: float[]) control =
    use k = Tensors.f64 robertsonRates
    Ode.odeint (robertson k) x0 times solver control

let private timed (run: unit -> 'a) =
    let watch = Stopwatch.StartNew()
    let result = run ()
    result, watch.Elapsed.TotalSeconds

/// Each reference time as the end of its own solve (outputs inside a step come from cubic Hermite interpolation,
/// which is looser over Robertson's long steps: see the test of interpolated outputs).
let private robertsonEndPoints (solver: ButcherTableau) (control: StepControl) (indices: int list) =
    indices |> List.map (fun k ->
        use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
        let solution, seconds = timed (fun () -> robertsonSolve solver x0 [| 0.0; robertsonTimes[k] |] control)
        use _ = solution
        use last = solution.Final
        let error = Array.map2 (fun y r -> abs (y - r) / abs r) (Tensors.toArray last) robertsonReference[k - 1] |> Array.max
        error, solution.Statistics, seconds)

let private adaptive = adaptiveWithin

/// SciPy Radau, rtol = atol = 1e-12: van der Pol (Liénard's form), μ = 1000, from (2, 0), at t = 250, 500, …, 3000
/// (away from its fast transitions near t = 807, 1614 and 2422; Radau at 1e-10 agrees to 5e-11).
let vdpTimes = [| 0.0; 250.0; 500.0; 1000.0; 1500.0; 2000.0; 3000.0 |]
let vdpReference =
    [| [| 1.8195982936833595; -0.0007873849047981749 |]
       [| 1.596768951055678; -0.001030391187836682 |]
       [| -1.863646254810873; 0.0007535430865407942 |]
       [| -1.354745919497699; 0.0016217887275440284 |]
       [| 1.7061677321788304; -0.000892809701006796 |]
       [| -1.5106069367598571; 0.0011783800006900187 |] |]

[<Tests>]
let tests =
    testList "Implicit/stiff problems" [
        for solver in Solvers.implicitSolvers do
            test $"{solver.Name}: Robertson at t = 1, 100 and 1e5 (each an end point) within 1e-4 of Radau" {
                let results = robertsonEndPoints solver (adaptive 1e-6 1e-10 5000) [ 1; 3; 6 ]
                for (error, stats, seconds), k in List.zip results [ 1; 3; 6 ] do
                    printfn $"{solver.Name} Robertson to t = {robertsonTimes[k]} (rtol 1e-6, atol 1e-10): relative error {error:G3}, {stats.AcceptedSteps} accepted, {stats.RejectedSteps} rejected, {stats.FunctionEvaluations} evaluations, {seconds:F2} s"
                    Expect.isLessThan error 1e-4 $"every component's relative error at t = {robertsonTimes[k]} (y2 ~ 1e-7 included)"
            }
        test "kvaerno5: Robertson's outputs inside steps (Hermite) within 10% of Radau, its end points within 1e-5" {
            use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
            use solution = robertsonSolve Solvers.kvaerno5 x0 robertsonTimes (adaptive 1e-6 1e-10 5000)
            let errors =
                robertsonReference |> Array.mapi (fun k row ->
                    use s = solution.States.select(0L, int64 (k + 1))
                    Array.map2 (fun y r -> abs (y - r) / abs r) (Tensors.toArray s) row |> Array.max)
            printfn $"kvaerno5 Robertson outputs at 1 … 1e5 in one solve: relative errors %A{errors}"
            Expect.isLessThan (Array.max errors[0 .. 4]) 0.1 "interpolated outputs"
            Expect.isLessThan errors[5] 1e-5 "the end point"
        }
        test "kvaerno5: accepted steps on Robertson over [0, 1] far below dopri5's at the same tolerance" {
            use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
            let control = adaptive 1e-6 1e-10 200_000
            let ours, oursSeconds = timed (fun () -> robertsonSolve Solvers.kvaerno5 x0 [| 0.0; 1.0 |] control)
            use _ = ours
            let dopri, dopriSeconds = timed (fun () -> robertsonSolve Solvers.dopri5 x0 [| 0.0; 1.0 |] control)
            use _ = dopri
            let a, b = ours.Statistics.AcceptedSteps, dopri.Statistics.AcceptedSteps
            printfn $"Robertson [0, 1], rtol 1e-6, atol 1e-10: kvaerno5 {a} accepted ({ours.Statistics.FunctionEvaluations} evaluations, {oursSeconds:F2} s), dopri5 {b} accepted ({dopri.Statistics.RejectedSteps} rejected, {dopri.Statistics.FunctionEvaluations} evaluations, {dopriSeconds:F2} s)"
            Expect.isLessThan (float a * 30.0) (float b) "more than 30 times fewer accepted steps"
        }
        test "kvaerno5: van der Pol (μ = 1000) to t = 3000 against Radau; dopri5 exhausts a budget of 20,000 steps early on" {
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let solution, seconds = timed (fun () -> Ode.odeint (vanDerPol 1000.0) x0 vdpTimes Solvers.kvaerno5 (adaptive 1e-7 1e-9 20_000))
            use _ = solution
            // y2 is about 1e-3 on the slow branches: errors relative to each component's size there.
            let errors =
                vdpReference |> Array.mapi (fun k row ->
                    use s = solution.States.select(0L, int64 (k + 1))
                    Array.map2 (fun y r -> abs (y - r) / abs r) (Tensors.toArray s) row |> Array.max)
            printfn $"kvaerno5 van der Pol to 3000 (rtol 1e-7, atol 1e-9): relative errors at the outputs %A{errors}, {solution.Statistics.AcceptedSteps} accepted, {solution.Statistics.RejectedSteps} rejected, {solution.Statistics.FunctionEvaluations} evaluations, {seconds:F2} s"
            Expect.isLessThan errors[errors.Length - 1] 1e-4 "the end point"
            Expect.isLessThan (Array.max errors) 1e-2 "the outputs inside steps (Hermite)"
            Expect.isLessThan solution.Statistics.AcceptedSteps 3000 "hundreds of steps over two periods"
            let dopri, dopriSeconds = timed (fun () -> raises<OdeSolveException> (fun () -> Ode.odeint (vanDerPol 1000.0) x0 [| 0.0; 3000.0 |] Solvers.dopri5 (adaptive 1e-7 1e-9 20_000) |> ignore))
            Expect.equal dopri.Failure OdeFailure.MaxStepsExceeded "dopri5 runs out of steps"
            printfn $"dopri5 van der Pol: the 20,000-step budget ran out at t = {dopri.Time:G4} ({dopriSeconds:F2} s)"
            Expect.isLessThan dopri.Time 100.0 "far before the end"
        }
    ]
