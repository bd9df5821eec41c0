/// Regression tests for the defects of the reliability issue: process aborts, unbounded runs, silently wrong results
/// and misleading messages. Each failed on the code before its fix.
module NeuralOde.Tests.Reliability.ReliabilityTests

open System
open System.Threading
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises

let private f64 = torch.float64
let private decay: VectorField = fun _ x -> x.neg()
let private quickly = TimeSpan.FromSeconds 2.0

/// Runs `action` and fails unless it ends within `limit` (it runs on this thread: a hang would hang the test, so the
/// limit is checked after the fact for what must be immediate).
let private within (limit: TimeSpan) (what: string) (action: unit -> unit) =
    let watch = Diagnostics.Stopwatch.StartNew()
    action ()
    Expect.isLessThan watch.Elapsed limit $"{what} took {watch.Elapsed.TotalSeconds:F2} s"

let private childTest (scenario: string) (what: string) =
    test $"in a child process: {what}" {
        let outcome = Child.run scenario (TimeSpan.FromSeconds 120.0)
        Expect.isFalse outcome.TimedOut $"the child hung:\n{outcome.Output}"
        Expect.equal outcome.ExitCode Child.Passed $"exit code {outcome.ExitCode} (134 = aborted):\n{outcome.Output}"
    }

[<Tests>]
let tests =
    testSequenced <| testList "Reliability" [
        testList "process aborts" [
            childTest "derived-parameter" "a parameter derived outside the field gets the adjoint gradient autograd gives"
            childTest "inplace-saved-adjoint" "a field that modifies a saved tensor in place makes the adjoint raise"
            childTest "inplace-saved-interpolated" "a field that modifies a saved tensor in place makes the interpolated adjoint raise"
            childTest "theorem1-terminal-shape" "Theorem 1 with a terminal gradient of the wrong shape raises"
            childTest "failed-constructor-finaliser" "a block whose constructor threw is finalised without ending the process"
            childTest "malformed-inputs" "800 random malformed calls of the public entry points of both assemblies: none aborts, hangs or raises an untyped exception"
        ]
        testList "unbounded runs" [
            test "fixed steps of 1e-9 over [0, 10] are refused before the solve, naming dt and the count" {
                within quickly "the refusal" (fun () ->
                    let e = raises<ArgumentOutOfRangeException> (fun () ->
                        use x = Tensors.f64 [| 1.0 |]
                        Ode.odeint decay x [| 0.0; 10.0 |] Solvers.rk4 (StepControl.fixedStep 1e-9) |> ignore)
                    Expect.equal e.ParamName "dt" "names dt"
                    Expect.stringContains e.Message "10000000000 steps" "says how many steps")
            }
            test "Steps(Int32.MaxValue) is refused, naming count; a larger budget admits it" {
                let e = raises<ArgumentOutOfRangeException> (fun () -> StepControl.validate (StepControl.steps Int32.MaxValue))
                Expect.equal e.ParamName "count" "names count"
                StepControl.validate (StepControl.Steps(2_000_000, 2_000_000))
            }
            test "an adjoint with Int32.MaxValue checkpoints is refused at once, naming checkpoints" {
                within quickly "the refusal" (fun () ->
                    use x = (Tensors.f64 [| 1.0 |]).requires_grad_(true)
                    let problem = OdeProblem.create decay x [| 0.0; 1.0 |]
                    let e = raises<ArgumentOutOfRangeException> (fun () ->
                        Ode.solveWith (Sensitivity.Adjoint { Sensitivity.defaultOptions with Checkpoints = Int32.MaxValue }) problem Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore)
                    Expect.equal e.ParamName "checkpoints" "names checkpoints")
            }
            test "NaN or infinite controller coefficients are refused, naming the coefficient" {
                for name, edit in [ "pCoeff", (fun o -> { o with PCoeff = nan })
                                    "iCoeff", (fun o -> { o with ICoeff = infinity })
                                    "safety", (fun o -> { o with Safety = nan })
                                    "safety", (fun o -> { o with Safety = 1.5 })
                                    "minFactor", (fun o -> { o with MinFactor = nan })
                                    "minStep", (fun o -> { o with MinStep = nan })
                                    "maxStep", (fun o -> { o with MaxStep = -1.0 }) ] do
                    let e = raises<ArgumentException> (fun () -> StepControl.validate (StepControl.Adaptive(edit StepControl.defaults)))
                    Expect.equal e.ParamName name $"names {name}"
            }
        ]
        testList "silently wrong" [
            test "a parameter listed twice gets the gradient of one listing, by every adjoint" {
                for name, sensitivity in Sensitivities.adjointMethods do
                    let gradient (listing: torch.Tensor -> torch.Tensor list) =
                        use w = (Tensors.f64 [| 0.7 |]).requires_grad_(true)
                        use x0 = Tensors.f64 [| 1.0; 2.0 |]
                        let problem = OdeProblem.create (fun _ x -> x * w) x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters (listing w)
                        use solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-10 1e-12)
                        use loss = solution.Final.sum()
                        Ode.backward loss
                        w.grad.ToDouble()
                    let once, twice = gradient (fun w -> [ w ]), gradient (fun w -> [ w; w ])
                    Expect.floatClose Accuracy.high twice once $"{name}: listed twice = listed once"
                    Expect.floatClose Accuracy.medium once (3.0 * exp 0.7) $"{name}: d/dw Σ x0 e^w = 3 e^w"
            }
            test "Theorem 1 refuses depths outside the span and an empty list of depths" {
                use layer = new GalLinear(1L, 1L, Basis.fourier 1 1.0, f64)
                use x0 = Tensors.f64m [| [| 1.0 |] |]
                use g = Tensors.f64m [| [| 1.0 |] |]
                let field: VectorField = fun s x -> layer.forward(x, s)
                let along depths = InfiniteDimensionalGradient.along field (fun () -> layer.LastWeights) x0 (0.0, 1.0) g None depths Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore
                let e = raises<ArgumentOutOfRangeException> (fun () -> along [| 0.5; 1.5 |])
                Expect.stringContains e.Message "depths[1] = 1.5" "names the depth"
                let e2 = raises<ArgumentException> (fun () -> along [||])
                Expect.equal e2.ParamName "depths" "names depths"
            }
            test "a failed adjoint on another thread never makes this thread's Ode.backward throw" {
                let stop = ref false
                let failures = ref 0
                let failing = Thread(fun () ->
                    while not stop.Value do
                        use scope = torch.NewDisposeScope()
                        let x0 = (Tensors.f64 [| 1.0 |]).requires_grad_(true)
                        let backward = ref false
                        let f: VectorField = fun _ x -> if backward.Value then failwith "field failed" else x.neg()
                        let solution = Ode.solveWith Sensitivity.adjoint (OdeProblem.create f x0 [| 0.0; 1.0 |]) Solvers.rk4 (StepControl.steps 4)
                        backward.Value <- true
                        try Ode.backward (solution.Final.sum()) with _ -> Interlocked.Increment failures |> ignore)
                failing.Start()
                let mutable wrong = None
                let watch = Diagnostics.Stopwatch.StartNew()
                while watch.Elapsed < TimeSpan.FromSeconds 2.0 && wrong.IsNone do
                    use scope = torch.NewDisposeScope()
                    let x0 = (Tensors.f64 [| 1.0 |]).requires_grad_(true)
                    let solution = Ode.solveWith Sensitivity.adjoint (OdeProblem.create decay x0 [| 0.0; 1.0 |]) Solvers.rk4 (StepControl.steps 4)
                    try Ode.backward (solution.Final.sum()) with e -> wrong <- Some e
                stop.Value <- true
                failing.Join()
                Expect.isNone wrong "a successful backward raised another thread's failure"
                Expect.isGreaterThan failures.Value 0 "the other thread did fail"
            }
            test "with only 0-dim inputs, a failed adjoint backward raises from plain loss.backward()" {
                use x0 = (torch.tensor(1.0, dtype = f64)).requires_grad_(true)
                let backward = ref false
                let f: VectorField = fun _ x -> if backward.Value then failwith "field failed" else x.neg()
                use solution = Ode.solveWith Sensitivity.adjoint (OdeProblem.create f x0 [| 0.0; 1.0 |]) Solvers.rk4 (StepControl.steps 4)
                use loss = solution.Final.sum()
                backward.Value <- true
                raises<Runtime.InteropServices.ExternalException> (fun () -> loss.backward()) |> ignore
            }
            test "a field that modifies its input in place is caught, and the caller's x0 is left as it was" {
                use x0 = Tensors.f64 [| 1.0; 2.0 |]
                let e = raises<OdeSolveException> (fun () -> Ode.odeint (fun _ x -> x.neg_()) x0 [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore)
                Expect.stringContains e.Message "in place" "says what happened"
                Expect.sequenceEqual (Tensors.toArray x0) [| 1.0; 2.0 |] "x0 restored"
            }
            test "bases and Galerkin layers refuse depths outside their domain" {
                let basis = Basis.legendre 3 1.0
                let e = raises<ArgumentOutOfRangeException> (fun () -> Basis.valuesAt basis 1.5 |> ignore)
                Expect.equal e.ParamName "depth" "names the depth"
                Expect.equal (Basis.valuesAt basis 1.0).Length 3 "the end of the domain is inside"
                use layer = new GalLinear(1L, 1L, basis, f64)
                use x = Tensors.f64m [| [| 1.0 |] |]
                raises<ArgumentOutOfRangeException> (fun () -> layer.forward(x, -0.5) |> ignore) |> ignore
            }
        ]
        testList "messages" [
            test "a span of 1e12 solves (the underflow floor is relative to the time, not the span)" {
                use x = Tensors.f64 [| 1.0 |]
                use solution = Ode.odeint (fun _ x -> x * -1e-12) x [| 0.0; 1e12 |] Solvers.dopri5 (StepControl.adaptive 1e-8 1e-10)
                Expect.floatClose Accuracy.medium (solution.Final.ToDouble()) (exp -1.0) "x(1e12) = e^-1"
            }
            test "a disposed x0, a field returning a disposed tensor, a null running loss raise named errors" {
                let x = Tensors.f64 [| 1.0 |]
                x.Dispose()
                let e = raises<ObjectDisposedException> (fun () -> Ode.odeint decay x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 2) |> ignore)
                Expect.stringContains e.Message "x0" "names x0"
                use y = Tensors.f64 [| 1.0 |]
                let e2 = raises<OdeSolveException> (fun () -> Ode.odeint (fun _ v -> (let d = v.neg() in d.Dispose(); d)) y [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 2) |> ignore)
                Expect.stringContains e2.Message "disposed tensor at t = 0" "says what and when"
                let block = new NeuralOdeModel(TorchSharp.torch.nn.Linear(1L, 1L, dtype = f64), Solvers.rk4, StepControl.steps 2, [| 0.0; 1.0 |])
                block.Dispose()
                let e4 = raises<ObjectDisposedException> (fun () -> block.forward y |> ignore)
                Expect.stringContains e4.Message "block" "says the block was disposed"
                let e3 = raises<ArgumentNullException> (fun () -> OdeProblem.create decay y [| 0.0; 1.0 |] |> OdeProblem.withIntegralLoss (Unchecked.defaultof<IntegralLoss>) |> ignore)
                Expect.equal e3.ParamName "integralLoss" "names integralLoss"
            }
            test "rtol below float32's unit roundoff and spans that overflow are refused up front" {
                use x = torch.ones([| 1L |], dtype = torch.float32)
                let e = raises<ArgumentOutOfRangeException> (fun () -> Ode.odeint decay x [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-9 1e-9) |> ignore)
                Expect.equal e.ParamName "rtol" "names rtol"
                let e2 = raises<ArgumentException> (fun () -> OdeProblem.create decay x [| -1e308; 1e308 |] |> ignore)
                Expect.stringContains e2.Message "overflows" "says why"
            }
        ]
        testList "solver options" [
            test "maxStep caps every step; minStep fails at once with StepSizeUnderflow" {
                use x = Tensors.f64 [| 1.0 |]
                use capped = Ode.odeint decay x [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.Adaptive { StepControl.defaults with MaxStep = 0.01 })
                Expect.isGreaterThanOrEqual capped.Statistics.AcceptedSteps 100 "at least 1/0.01 steps"
                Expect.floatClose Accuracy.high (capped.Final.ToDouble()) (exp -1.0) "still accurate"
                let oscillating = Problems.linear [| [| 0.0; 50.0 |]; [| -50.0; 0.0 |] |]
                use z = Tensors.f64m [| [| 1.0; 0.0 |] |]
                let e = raises<OdeSolveException> (fun () -> Ode.odeint oscillating z [| 0.0; 10.0 |] Solvers.dopri5 (StepControl.Adaptive { StepControl.defaults with MinStep = 0.5 }) |> ignore)
                Expect.equal e.Failure OdeFailure.StepSizeUnderflow "the failure"
                Expect.stringContains e.Message "minStep" "names minStep"
            }
            test "trySolve returns what was computed up to a failure, with the time and the reason" {
                use x = Tensors.f64 [| 1.0 |]
                let f: VectorField = fun t v -> if t > 0.55 then v * nan else v.neg()
                use solution = Ode.trySolve (OdeProblem.create f x [| 0.0; 0.25; 0.5; 0.75; 1.0 |]) Solvers.rk4 (StepControl.steps 20)
                match solution.Status with
                | SolveStatus.Failed(failure, time, _) ->
                    Expect.equal failure OdeFailure.NonFiniteValue "the reason"
                    Expect.isTrue (time > 0.5 && time < 0.75) $"the time {time}"
                | SolveStatus.Succeeded -> failtest "the solve should have failed"
                Expect.sequenceEqual solution.Times [| 0.0; 0.25; 0.5 |] "the outputs reached"
                Expect.floatClose Accuracy.medium (solution.Final.ToDouble()) (exp -0.5) "x(0.5)"
                use fine = Ode.trySolve (OdeProblem.create decay x [| 0.0; 1.0 |]) Solvers.rk4 (StepControl.steps 20)
                Expect.equal fine.Status SolveStatus.Succeeded "a good solve succeeds"
            }
        ]
    ]

/// One block from two threads (fused or generic, adjoint or autograd, and a DepthCat field forward-only), two blocks
/// on two threads, a parallel ensemble: no crash, and the results of the single-threaded runs. Each died with SIGSEGV
/// or a heap-corruption abort, or (DepthCat) returned values off by up to 1.3e-3, before the fix.
[<Tests>]
let concurrency =
    testList "Reliability/concurrency" [
        for name, _ in Concurrency.scenarios -> childTest name $"{name}: no crash, the single-threaded results"
    ]

/// The new surface's bad inputs (reliability, round two): each was a message naming something the user never passed,
/// or a cancellation that did not act.
[<Tests>]
let roundTwo =
    testSequenced <| testList "Reliability/round two" [
        test "a flow's LogProbability of a row with Inf names x, its shape and the row (not the augmented x0)" {
            let field = Sequential(Linear(2L, 8L, dtype = f64), Tanh(), Linear(8L, 2L, dtype = f64))
            use cnf = new Cnf(field, 2, Exact, Solvers.dopri5, StepControl.adaptive 1e-6 1e-8)
            use x = torch.tensor([| 0.0; 0.0; 0.0; 0.0; 0.0; infinity; 0.0; 0.0 |], dtype = f64).reshape(4L, 2L)
            let e = raises<ArgumentException> (fun () -> cnf.LogProbability(x) |> ignore)
            Expect.equal e.ParamName "x" "names x"
            Expect.stringContains e.Message "[4, 2]" "x's shape"
            Expect.stringContains e.Message "row(s) [2]" "the row"
        }
        test "a depth module that returns NaN is named, with the samples (not 't1')" {
            let field = Sequential(Linear(2L, 2L, dtype = f64))
            let depth = Sequential(Linear(2L, 1L, dtype = f64))
            use model = new AdaptiveDepthModel(field, depth, Solvers.rk4, StepControl.steps 4)
            use x = torch.tensor([| 1.0; 1.0; nan; 1.0; 1.0; 1.0 |], dtype = f64).reshape(3L, 2L)
            let e = raises<InvalidOperationException> (fun () -> model.forward(x) |> ignore)
            Expect.stringContains e.Message "depth module returned NaN or Inf for sample(s) [1]" "names the module and the sample"
        }
        test "cancellation reaches the fused solver's backward pass" {
            let field = Sequential(Linear(2L, 32L), Tanh(), Linear(32L, 2L))
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 200, [| 0.0; 1.0 |])
            use x = torch.randn([| 64L; 2L |])
            use cts = new CancellationTokenSource()
            Cancellation.within cts.Token (fun () ->
                use y = block.forward x
                Expect.isTrue (Compiled.ran block) "the fused solver ran"
                use loss = y.square().sum()
                cts.Cancel()
                let e = raises<OperationCanceledException> (fun () -> Ode.backward loss)
                Expect.stringContains e.Message "cancelled at t = " "at a step of the backward pass")
        }
    ]

