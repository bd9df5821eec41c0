/// The automatic stiffness switcher (Solvers.autoSwitch), float64: the stability boundaries it compares with (known
/// values); the implicit method picked on Robertson's reaction, the explicit one kept on a non-stiff problem (step for
/// step the explicit method's solve); a problem stiff only in the middle switched there and back, with the switch
/// points in the statistics; gradients by autograd and by the interpolated adjoint through the switches.
module NeuralOde.Tests.Implicit.SwitchingTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises
open NeuralOde.Tests.Implicit.StiffProblems

let private adaptive = adaptiveWithin

let private auto = Solvers.autoSwitch Solvers.tsit5 Solvers.kvaerno5

/// dx/dt = −λ(t)(x − p cos t), λ(t) = 1 + 10⁴ exp(−(t − 5)²): stiff around t = 5 only (λ above 10³ for t in about
/// [3.5, 6.5]). Linear in (x0, p): x(T) = x(T; x0, 0) + p·x(T; 0, 1).
let private middleStiff (p: torch.Tensor) : VectorField =
    fun t x ->
        let lambda = 1.0 + 1e4 * exp (-((t - 5.0) ** 2.0))
        let forcing = TensorOps.scale p (cos t)
        TensorOps.scale (TensorOps.addScaled x forcing -1.0) (-lambda)

let private solveMiddle (solver: ButcherTableau) (x0: float) (p: torch.Tensor) (control: StepControl) =
    use x = Tensors.f64 [| x0 |]
    Ode.solve (OdeProblem.create (middleStiff p) x [| 0.0; 10.0 |]) solver control

[<Tests>]
let tests =
    testList "Implicit/switching" [
        test "stability boundaries on the negative real axis from the tableaux: Euler 2, Heun 2, RK4 2.785, Dopri5 3.307" {
            let boundary t = StabilityRegion.realBoundary t
            Expect.floatClose Accuracy.high (boundary Solvers.euler) 2.0 "Euler: |1 + z| ≤ 1"
            Expect.floatClose Accuracy.high (boundary Solvers.heun) 2.0 "Heun: |1 + z + z²/2| ≤ 1"
            // RK4: 1 + z + z²/2 + z³/6 + z⁴/24 = 1 at z ≈ −2.7853 (Hairer & Wanner II, Fig. IV.2.1).
            Expect.isLessThan (abs (boundary Solvers.rk4 - 2.785293563)) 1e-6 "RK4"
            let dopri5 = boundary Solvers.dopri5
            let tsit5 = boundary Solvers.tsit5
            printfn $"stability boundaries: dopri5 {dopri5:F4}, tsit5 {tsit5:F4}"
            Expect.isLessThan (abs (dopri5 - 3.3066)) 1e-3 "Dopri5 (Hairer & Wanner's 3.3)"
            Expect.isTrue (tsit5 > 3.0 && tsit5 < 4.0) "Tsit5 about 3.5"
        }
        test "auto(tsit5, kvaerno5) takes the implicit method on Robertson's reaction early on and stays there" {
            use k = Tensors.f64 robertsonRates
            use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
            use solution = Ode.odeint (robertson k) x0 [| 0.0; 100.0 |] auto (adaptive 1e-6 1e-10 20_000)
            use last = solution.Final
            // SciPy Radau at rtol 1e-12 (Implicit/stiff_references.py), t = 100.
            let reference = [| 0.6172348823960814; 6.153591274639731e-06; 0.3827589640126413 |]
            let error = Array.map2 (fun y r -> abs (y - r) / abs r) (Tensors.toArray last) reference |> Array.max
            let statistics = solution.Statistics
            printfn $"Robertson to t = 100 by {auto.Name}: {statistics}; relative error {error:G3}"
            Expect.isGreaterThanOrEqual statistics.Switches.Length 1 "switched"
            Expect.equal statistics.Switches[0].Solver "kvaerno5" "to the implicit method"
            Expect.isLessThan statistics.Switches[0].Time 0.1 "early: Robertson is stiff from t ≈ 1e-3"
            Expect.equal statistics.Switches.Length 1 "and stays implicit"
            Expect.isLessThan statistics.AcceptedSteps 500 "steps sized by accuracy (tsit5 would need some 10⁵)"
            Expect.isLessThan error 1e-4 "against Radau"
            // tsit5 alone, under a budget of 5000 steps, gets nowhere near t = 100.
            let e = raises<OdeSolveException> (fun () -> Ode.odeint (robertson k) x0 [| 0.0; 100.0 |] Solvers.tsit5 (adaptive 1e-6 1e-10 5000) |> ignore)
            Expect.equal e.Failure OdeFailure.MaxStepsExceeded "tsit5 exhausts its budget"
        }
        test "on a non-stiff problem the switcher keeps the explicit method, step for step tsit5's solve" {
            use x0 = Tensors.f64 [| 1.0; 0.5 |]
            let problem = OdeProblem.create (Problems.linear Problems.oscillatory) x0 [| 0.0; 5.0; 10.0 |]
            use viaAuto = Ode.solve problem auto (adaptive 1e-8 1e-10 100_000)
            use viaTsit5 = Ode.solve problem Solvers.tsit5 (adaptive 1e-8 1e-10 100_000)
            printfn $"oscillator: {auto.Name} {viaAuto.Statistics}; tsit5 {viaTsit5.Statistics}"
            Expect.isEmpty viaAuto.Statistics.Switches "no switch"
            Expect.equal viaAuto.Statistics.AcceptedSteps viaTsit5.Statistics.AcceptedSteps "the same steps"
            Expect.equal viaAuto.Statistics.FunctionEvaluations viaTsit5.Statistics.FunctionEvaluations "the same evaluations (the FSAL stage reused)"
            // The end point is the steps' own; t = 5 lies inside a step, read by Hermite (the switcher) or tsit5's
            // continuous extension.
            Expect.isLessThan (Tensors.maxAbsDiff viaAuto.Final viaTsit5.Final) 1e-14 "the same solution"
        }
        test "a problem stiff only in the middle: to the implicit method before t = 5 and back to the explicit one after" {
            use p = Tensors.f64 [| 1.0 |]
            let control = adaptive 1e-7 1e-10 100_000
            use switched = solveMiddle auto 2.0 p control
            use reference = solveMiddle Solvers.kvaerno5 2.0 p (adaptive 1e-11 1e-13 100_000)
            use explicitOnly = solveMiddle Solvers.tsit5 2.0 p control
            let switches = switched.Statistics.Switches
            printfn $"middle-stiff: {auto.Name} {switched.Statistics}; tsit5 {explicitOnly.Statistics.AcceptedSteps} steps; kvaerno5 reference {reference.Statistics.AcceptedSteps} steps"
            Expect.equal (switches |> Array.map (fun s -> s.Solver)) [| "kvaerno5"; "tsit5" |] "there and back"
            Expect.isTrue (switches[0].Time > 2.0 && switches[0].Time < 5.0) "to implicit as λ grows"
            Expect.isTrue (switches[1].Time > 5.0 && switches[1].Time < 8.0) "back to explicit as λ falls"
            Expect.isLessThan (Tensors.maxAbsDiff switched.Final reference.Final) 1e-6 "the solution"
            Expect.isLessThan (3 * switched.Statistics.AcceptedSteps) explicitOnly.Statistics.AcceptedSteps "far fewer steps than tsit5"
        }
        test "float32: the switcher's estimates see the same stiffness (there and back on the middle-stiff problem)" {
            use p = torch.ones([| 1L |], dtype = torch.float32)
            use x = torch.tensor([| 2.0f |])
            use solution = Ode.solve (OdeProblem.create (middleStiff p) x [| 0.0; 10.0 |]) auto (adaptive 1e-5 1e-7 100_000)
            printfn $"middle-stiff in float32: {solution.Statistics}"
            Expect.equal (solution.Statistics.Switches |> Array.map (fun s -> s.Solver)) [| "kvaerno5"; "tsit5" |] "there and back"
            Expect.isTrue (solution.Statistics.Switches[0].Time < 5.0 && solution.Statistics.Switches[1].Time > 5.0) "around the stiff middle"
        }
        test "gradients through the switches: autograd and the interpolated adjoint give dx(T)/dp = x(T; x0 = 0, p = 1)" {
            // At rtol 1e-7 the switcher goes implicit in the middle (at 1e-9 tsit5's steps stay accuracy-limited there:
            // hρ stays below 2.3, under the threshold 3.16, and it keeps the explicit method throughout).
            let control = adaptive 1e-7 1e-10 100_000
            use one = Tensors.f64 [| 1.0 |]
            use expected = solveMiddle Solvers.kvaerno5 0.0 one (adaptive 1e-11 1e-13 100_000)
            let exact = (Tensors.toArray expected.Final)[0]
            use p = (Tensors.f64 [| 1.0 |]).requires_grad_(true)
            use viaAutograd = solveMiddle auto 2.0 p control
            Ode.backward (viaAutograd.Final.sum())
            let autograd = (Tensors.toArray p.grad)[0]
            use q = (Tensors.f64 [| 1.0 |]).requires_grad_(true)
            use x0 = Tensors.f64 [| 2.0 |]
            let problem = OdeProblem.create (middleStiff q) x0 [| 0.0; 10.0 |] |> OdeProblem.withParameters [| q |]
            use viaAdjoint = Ode.solveWith Sensitivity.interpolatedAdjoint problem auto control
            Ode.backward (viaAdjoint.Final.sum())
            let adjoint = (Tensors.toArray q.grad)[0]
            printfn $"dx(T)/dp: autograd {autograd}, interpolated adjoint {adjoint}, exact {exact}; switches {viaAutograd.Statistics.Switches.Length}"
            Expect.isGreaterThanOrEqual viaAutograd.Statistics.Switches.Length 2 "through both switches"
            Expect.isLessThan (abs (autograd - exact)) 1e-5 "autograd"
            Expect.isLessThan (abs (adjoint - exact)) 1e-5 "interpolated adjoint"
        }
        test "auto(tsit5, rosenbrock23), Julia's AutoTsit5(Rosenbrock23()): implicit on Robertson, Radau's value at t = 100" {
            use k = Tensors.f64 robertsonRates
            use x0 = Tensors.f64 [| 1.0; 0.0; 0.0 |]
            let auto23 = Solvers.autoSwitch Solvers.tsit5 Solvers.rosenbrock23
            use solution = Ode.odeint (robertson k) x0 [| 0.0; 100.0 |] auto23 (adaptive 1e-4 1e-8 20_000)
            use last = solution.Final
            let reference = [| 0.6172348823960814; 6.153591274639731e-06; 0.3827589640126413 |]
            let error = Array.map2 (fun y r -> abs (y - r) / abs r) (Tensors.toArray last) reference |> Array.max
            printfn $"Robertson to t = 100 by {auto23.Name} at rtol 1e-4: {solution.Statistics}; relative error {error:G3}"
            Expect.equal (solution.Statistics.Switches |> Array.map (fun s -> s.Solver)) [| "rosenbrock23" |] "to Rosenbrock23, once"
            Expect.isLessThan error 1e-2 "against Radau, at this tolerance"
        }
        test "the adjoints refuse a Rosenbrock backward solve (it needs the adjoint system's exact Jacobian), naming the way out" {
            use x0 = Tensors.f64 [| 2.0; 0.0 |]
            let problem = OdeProblem.create (Problems.linear stiffLinear) x0 [| 0.0; 1.0 |]
            for solver in [ Solvers.rodas4; Solvers.autoSwitch Solvers.tsit5 Solvers.rosenbrock23 ] do
                let e = raises<System.ArgumentException> (fun () -> Ode.solveWith Sensitivity.interpolatedAdjoint problem solver (adaptive 1e-6 1e-9 1000) |> ignore)
                Expect.stringContains e.Message "Kvaerno5" $"{solver.Name}: says what works"
            // A Rosenbrock forward solve with an ESDIRK backward solve is fine.
            let stiffBackward = Sensitivity.InterpolatedAdjoint { Sensitivity.defaultOptions with Solver = Some Solvers.kvaerno5 }
            use solution = Ode.solveWith stiffBackward problem Solvers.rodas4 (adaptive 1e-6 1e-9 1000)
            Expect.equal solution.Times.Length 2 "solved"
        }
        test "autoSwitch names what does not fit; Newton options reach its implicit method" {
            let e1 = raises<System.ArgumentException> (fun () -> Solvers.autoSwitch Solvers.kvaerno3 Solvers.kvaerno5 |> ignore)
            Expect.equal e1.ParamName "nonStiff" "an implicit non-stiff method"
            let e2 = raises<System.ArgumentException> (fun () -> Solvers.autoSwitch Solvers.tsit5 Solvers.dopri5 |> ignore)
            Expect.equal e2.ParamName "stiff" "an explicit stiff method"
            let e3 = raises<System.ArgumentException> (fun () -> Solvers.autoSwitch Solvers.bosh3 Solvers.kvaerno5 |> ignore)
            Expect.stringContains e3.Message "two stages at the same node" "bosh3 has no stage pair"
            let blocks = Solvers.withRowBlocks auto
            Expect.equal blocks.Switching.Value.Implicit.Newton.Structure JacobianStructure.RowBlocks "the implicit method's Jacobian in blocks"
        }
    ]
