/// The step loop keeps a constant number of tensors alive however many steps it takes: nothing made in a step may
/// outlive it but the state and f there. (A per-step tensor kept alive — as a first version of the fixed-step
/// finiteness flags did — grows native memory with the steps and, interleaved with the steps' large transient
/// tensors, fragments the native heap: +1.46 GiB resident for W4's adjoint at 1000 steps.)
module NeuralOde.Tests.Solve.TensorLifetimeTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

/// Live tensors on this thread at every evaluation of f during `run`, which is given the counting field.
let private liveCounts (run: VectorField -> unit) =
    let counts = ResizeArray<int64>()
    let f: VectorField = fun _ x ->
        counts.Add(int64 DisposeScopeManager.Statistics.ThreadTotalLiveCount)
        x.neg()
    run f
    counts.ToArray()

/// Runs `action` and returns how many more tensors are alive on this thread afterwards, with its result.
let private leftAlive (action: unit -> 'a) : int64 * 'a =
    let before = DisposeScopeManager.Statistics.ThreadTotalLiveCount
    let result = action ()
    DisposeScopeManager.Statistics.ThreadTotalLiveCount - before, result

/// Largest minus smallest count over the middle of the solve (the first and last evaluations set up and collect).
let private spread (counts: int64[]) =
    let middle = counts[counts.Length / 10 .. counts.Length - counts.Length / 10]
    Array.max middle - Array.min middle

[<Tests>]
let tests =
    testList "Solve/tensor lifetime" [
        test "a fixed-step solve keeps as many tensors alive at step 190 as at step 10" {
            let counts = liveCounts (fun f ->
                use _ = torch.no_grad()
                use x = Tensors.f64 [| 1.0; 2.0 |]
                use solution = Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 200)
                ())
            Expect.equal counts.Length 800 "evaluations: f(t0), then three stages per step and f at each step end but the last"
            // Within a step the count moves with the stages; the first stage of every step must see the same count.
            let firstStages = [| for i in 0 .. 4 .. counts.Length - 4 -> counts[i] |]
            Expect.equal (spread firstStages) 0L $"live tensors at each step's first stage: {firstStages[20]} at step 5, {firstStages[190]} at step 190"
        }
        test "an adaptive solve keeps a bounded number of tensors alive" {
            let counts = liveCounts (fun f ->
                use _ = torch.no_grad()
                use x = Tensors.f64 [| 1.0; 2.0 |]
                use solution = Ode.odeint f x [| 0.0; 20.0 |] Solvers.dopri5 (StepControl.adaptive 1e-10 1e-10)
                ())
            Expect.isGreaterThan counts.Length 300 "enough steps to see growth"
            Expect.isLessThanOrEqual (spread counts) 12L "the live count varies only with the stages of one step"
        }
        for solver, control in [ Solvers.dopri5, StepControl.adaptive 1e-8 1e-8; Solvers.tsit5, StepControl.adaptive 1e-6 1e-6
                                 Solvers.rk4, StepControl.fixedStep 0.03 ] do
            test $"a {solver.Name} solve with 40 interpolated outputs leaves nothing alive once its solution is disposed" {
                use w = Tensors.f64 [| 0.0; -1.0; 1.0; -0.1 |]
                use m = w.view(2L, 2L)
                use x0 = Tensors.f64 [| 1.0; 0.0 |]
                // A field that leaves an intermediate undisposed at every evaluation.
                let f: VectorField = fun _ x -> x.matmul(m).tanh()
                let times = Array.init 41 (fun i -> float i * 0.05)
                let left, () = leftAlive (fun () ->
                    use solution = Ode.odeint f x0 times solver control
                    Expect.equal solution.States.shape [| 41L; 2L |] "every output")
                Expect.equal left 0L "live tensors after the solution is disposed"
            }
        // dx/dt = x written as `fun _ x -> x`: f returns the very tensor it was given. The solver disposes what f
        // returns when it is done with it; that must not dispose its own stage inputs, nor the caller's x0.
        for sensitivity in [ Sensitivity.Autograd; Sensitivity.adjoint ] do
            for solver, control in [ Solvers.dopri5, StepControl.adaptive 1e-10 1e-10; Solvers.rk4, StepControl.steps 100 ] do
                test $"a field that returns its input solves dx/dt = x ({solver.Name}, {sensitivity}) and leaves x0 alive" {
                    use x0 = Tensors.f64 [| 1.0; -2.0 |]
                    let f: VectorField = fun _ x -> x
                    let problem = OdeProblem.create f x0 [| 0.0; 0.5; 1.0 |]
                    let check () =
                        use solution = Ode.solveWith sensitivity problem solver control
                        let final = Tensors.toArray solution.Final
                        Expect.floatClose Accuracy.medium final[0] (exp 1.0) "x(1) = e·x0"
                        Expect.floatClose Accuracy.medium final[1] (-2.0 * exp 1.0) "x(1) = e·x0"
                    check ()
                    Expect.isFalse x0.IsInvalid "x0 is not disposed"
                    Expect.sequenceEqual (Tensors.toArray x0) [| 1.0; -2.0 |] "x0 unchanged"
                }
        for name, sensitivity in Sensitivities.all do
            for solver, control in [ Solvers.dopri5, StepControl.adaptive 1e-10 1e-10; Solvers.rk4, StepControl.steps 10 ] do
                test $"a constant field and loss returning tensors the caller owns ({solver.Name}, {name}) solve, differentiate and leave them alive" {
                    use x0 = Tensors.f64 [| 1.0; -2.0 |]
                    x0.requires_grad_(true) |> ignore
                    use c = Tensors.f64 [| 0.5; 3.0 |]
                    use q = torch.tensor(0.25, dtype = torch.float64)
                    let f: VectorField = fun _ _ -> c
                    let problem = OdeProblem.create f x0 [| 0.0; 1.0; 2.0 |] |> OdeProblem.withIntegralLoss (fun _ _ -> q)
                    let check () =
                        use solution = Ode.solveWith sensitivity problem solver control
                        let final = Tensors.toArray solution.Final
                        Expect.floatClose Accuracy.high final[0] 2.0 "x(2) = x0 + 2c"
                        Expect.floatClose Accuracy.high final[1] 4.0 "x(2) = x0 + 2c"
                        Expect.floatClose Accuracy.high (solution.Integral.Value.ToDouble()) 0.5 "∫ q dt = 2q"
                        use total = solution.Final.sum()
                        total.backward()
                        Expect.sequenceEqual (Tensors.toArray x0.grad) [| 1.0; 1.0 |] "d Σx(2) / dx0 = 1"
                    check ()
                    Expect.isFalse (c.IsInvalid || q.IsInvalid) "c and q are not disposed"
                    Expect.sequenceEqual (Tensors.toArray c) [| 0.5; 3.0 |] "c unchanged"
                }
        // Sensitivities and gradients run outside the step loop too: what they make must not be left to the
        // finaliser (on the GPU that is device memory the garbage collector cannot see).
        for name, sensitivity in Sensitivities.all do
            for withLoss in [ false; true ] do
                let loss = if withLoss then " and a running loss" else ""
                test $"{name}{loss}: forward and backward leave alive only the gradients they give" {
                    use generator = new torch.Generator(3UL)
                    use w = torch.randn([| 2L; 2L |], dtype = torch.float64, generator = generator).requires_grad_(true)
                    use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = generator).requires_grad_(true)
                    // A field and a loss that leave their intermediates undisposed, as users' code often does.
                    let f: VectorField = fun _ x -> x.matmul(w).tanh()
                    let problem = OdeProblem.create f x0 [| 0.0; 0.5; 1.0 |] |> OdeProblem.withParameters [ w ]
                    let problem = if withLoss then problem |> OdeProblem.withIntegralLoss Sensitivities.runningLoss else problem
                    let left, () = leftAlive (fun () ->
                        use solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-8 1e-8)
                        use squares = solution.States.square()
                        use terminal = squares.sum()
                        use total = match solution.Integral with Some i -> terminal + i | None -> terminal.alias()
                        total.backward())
                    Expect.isNotNull w.grad "the parameter has its gradient"
                    Expect.isNotNull x0.grad "the initial state has its gradient"
                    // (.grad makes its wrapper when read, after the count.) Nothing is left alive by autograd. The
                    // adjoints leave two: TorchSharp reads the gradients a custom backward returns (here for x0 and
                    // w) by their handles after it returns and never frees those wrappers, so they go to the
                    // enclosing dispose scope or the finaliser. Before this test, with this leaky field, autograd
                    // with a running loss left 3 tensors alive and the adjoints 6 to 19.
                    let expected = if Sensitivities.isAutograd sensitivity then 0L else 2L
                    Expect.equal left expected "live tensors after the backward (the adjoints: TorchSharp's wrappers of the returned gradients)"
                }
        test "the spectral gradient (Theorem 1 by quadrature) leaves alive only its result" {
            let basis = Basis.fourier 1 1.0
            use layer = new GalLinear(2L, 2L, basis, torch.float64)
            Tensors.initialize 5 1.0 layer
            use generator = new torch.Generator(5UL)
            use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = generator)
            use terminal = torch.ones([| 3L; 2L |], dtype = torch.float64)
            let f: VectorField = fun s x -> (use z = layer.forward(x, s) in z.tanh())
            let left, gradient = leftAlive (fun () ->
                InfiniteDimensionalGradient.spectralConverged basis 1e-8 f (fun () -> layer.LastWeights) x0 terminal None
                    Solvers.dopri5 (StepControl.adaptive 1e-9 1e-9))
            Expect.equal gradient.shape [| 6L; 3L |] "one row per weight, one column per basis function"
            gradient.Dispose()
            Expect.equal left 1L "live tensors after the gradient: the gradient"
        }
        test "the stacked gradient (Corollary 2) leaves alive only its result" {
            let partition = [| 0.0; 0.4; 1.0 |]
            use layer = new StackedLinear(2L, 2L, partition, torch.float64)
            Tensors.initialize 9 1.0 layer
            use generator = new torch.Generator(9UL)
            use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = generator)
            use terminal = torch.ones([| 3L; 2L |], dtype = torch.float64)
            let fieldFor (i: int) : VectorField = fun _ x -> (use z = layer.forward(x, i) in z.tanh())
            let left, gradient = leftAlive (fun () ->
                InfiniteDimensionalGradient.stacked fieldFor (fun () -> layer.LastWeights) partition x0 terminal
                    (Some Sensitivities.runningLoss) 1e-8 Solvers.dopri5 (StepControl.adaptive 1e-9 1e-9))
            Expect.equal gradient.shape.[0] 2L "one row per interval"
            gradient.Dispose()
            Expect.equal left 1L "live tensors after the gradient: the gradient"
        }
        test "a NeuralOdeModel training step (MLP field, adjoint and autograd) leaves nothing alive but gradients" {
            for sensitivity, fused in [ Sensitivity.Autograd, false; Sensitivity.Autograd, true; Sensitivity.adjoint, false; Sensitivity.adjoint, true ] do
                use field = torch.nn.Sequential(torch.nn.Linear(2L, 8L), torch.nn.Tanh(), torch.nn.Linear(8L, 2L))
                Tensors.initialize 1 0.5 field
                use model = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 10, sensitivity, [| 0.0; 1.0 |])
                model.Backend <- Compiled.choice (fused)
                use x = torch.ones([| 5L; 2L |])
                let step () =
                    use z = model.forward x
                    use squares = z.square()
                    use loss = squares.sum()
                    loss.backward()
                step ()
                let left, () = leftAlive step
                // The adjoint: TorchSharp's wrappers of the 4 parameter gradients and of x's, returned by its backward.
                // The compiled backend hands libtorch the same wrappers but frees them at this thread's next
                // solve (the discrete adjoint and the compiled adjoint): this step freed the first step's.
                let expected = if not (Sensitivities.isAutograd sensitivity) && not fused then 5L else 0L
                Expect.equal left expected $"{sensitivity} (fused {fused}): live tensors left by a second training step"
                let afterMore, () = leftAlive (fun () -> step (); step (); step ())
                Expect.equal afterMore (3L * expected) $"{sensitivity} (fused {fused}): three more steps leave three times as many"
        }
    ]
