/// The timed workloads W1, W2, W3, W5, W6 (float32, 2 threads, fixed seeds; median, min and max after warm-up).
module NeuralOde.Benchmarks.Timings

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Benchmarks.Report

/// max |x − y| / max |y| (float64 on the host's side; y is the reference).
let private relativeError (x: torch.Tensor) (y: torch.Tensor) =
    use _ = torch.NewDisposeScope()
    let d = (x.cpu().to_type(torch.float64) - y.cpu().to_type(torch.float64)).abs().max()
    let m = y.abs().max()
    d.ToDouble() / max (m.ToDouble()) 1e-30

/// Largest relative error over two lists of tensors, pair by pair.
let private relativeDifference (a: torch.Tensor[]) (b: torch.Tensor[]) = Array.map2 relativeError a b |> Array.max

/// W1's three variants (the iteration, its floor, the plain loop), each as an action on its own state.
let private w1Variants () =
    let block, trainer = Workloads.w1 1024 64 1
    let manual = new Floor.ManualW1(block.VectorField, trainer.Readout, 20, trainer.Optimizer)
    let plain = Workloads.PlainRk4(64, 20, 1)
    let floorStep () =
        use _ = torch.NewDisposeScope()
        let x, y = trainer.Sample()
        manual.Step(x, y) |> ignore
    block, trainer, manual, [| (fun () -> trainer.Step() |> ignore); floorStep; (fun () -> plain.Step() |> ignore) |]

/// W1, its floor and the plain loop timed interleaved, run by run (the way `w1` reports them).
let w1Interleaved (repeats: int) =
    let _, _, manual, steps = w1Variants ()
    use _ = manual
    Measure.interleaved 20 repeats steps

/// One of W1's variants ("w1", "floor" or "plain") run alone, for an external profiler. Alone, the floor is slower
/// than interleaved with W1 (44–54 against 37–43 ms here: it page-faults ~1,500 times per iteration when it has the
/// heap to itself, W1 hardly at all), so compare variants only as `w1` runs them.
let alone (variant: string) (iterations: int) (batch: int) (width: int) =
    // Fewer warm-up iterations for the large W3 configurations (seconds each).
    let warmup = if batch * width > 1024 * 64 * 4 then 3 else 20
    match variant with
    | "w2" | "w2-generic" ->
        let block, trainer = Workloads.w2 2
        block.Backend <- (if (variant = "w2") then FieldBackendChoice.Auto else FieldBackendChoice.Module)
        // Also per function evaluation (forward and backward), as the peer's script reports it: the iteration's time
        // over its evaluations, median over the timed iterations.
        let perEvaluation = ResizeArray<float>()
        let evaluations = ResizeArray<float>()
        let step () =
            let clock = Diagnostics.Stopwatch.StartNew()
            trainer.Step() |> ignore
            let ms = clock.Elapsed.TotalMilliseconds
            let nfe = block.LastStatistics.FunctionEvaluations + block.LastBackwardStatistics.FunctionEvaluations
            perEvaluation.Add(ms / float nfe)
            evaluations.Add(float nfe)
        let s = Measure.time 20 iterations step
        let timed (xs: ResizeArray<float>) = (Measure.summarize (xs.ToArray()[20..])).Median
        printfn "per evaluation median %.4f ms, evaluations median %g" (timed perEvaluation) (timed evaluations)
        s
    | "w5" | "w5-generic" ->
        let block, trainer = Workloads.w5 5
        block.Backend <- (if (variant = "w5") then FieldBackendChoice.Auto else FieldBackendChoice.Module)
        Measure.time 20 iterations (fun () -> trainer.Step() |> ignore)
    | "ball" ->
        // W11 events: the peer warms up 10 iterations.
        let trainer = BouncingBall.Trainer()
        let s = Measure.time 10 iterations (fun () -> trainer.Step() |> ignore)
        printfn "ball: g = %.4f, e = %.4f after %d iterations; %d evaluations in the last" trainer.Gravity trainer.Restitution (iterations + 10) trainer.Evaluations
        s
    | "robertson" | "robertson-rodas4" | "robertson-auto" ->
        // W11 stiff: the peer warms up 3 iterations.
        let solver =
            match variant with
            | "robertson-rodas4" -> Solvers.rodas4
            | "robertson-auto" -> Solvers.autoSwitch Solvers.tsit5 Solvers.rodas4
            | _ -> Solvers.kvaerno5
        let trainer = Robertson.Trainer(solver)
        let s = Measure.time 3 iterations (fun () -> trainer.Step() |> ignore)
        printfn "%s (%s): theta = %A after %d iterations; %d accepted steps, %d evaluations in the last; error at the true rates %.2f tolerance units"
            variant solver.Name trainer.Theta (iterations + 3) trainer.Steps trainer.Evaluations (trainer.ErrorAtTruth())
        s
    | "cnf" ->
        let trainer = Workloads.CnfTrainer(0)
        Measure.time 10 iterations (fun () -> trainer.Step() |> ignore)
    | "w1-generic" ->
        // W1 on the generic solver (the fused one off): what W1 measured before the fused solver.
        let block, trainer = Workloads.w1 batch width 1
        block.Backend <- FieldBackendChoice.Module
        Measure.time warmup iterations (fun () -> trainer.Step() |> ignore)
    | "w1" when batch <> 1024 || width <> 64 ->
        // W3: W1 at another batch size or width.
        let _, trainer = Workloads.w1 batch width 1
        Measure.time warmup iterations (fun () -> trainer.Step() |> ignore)
    | _ ->
    let index =
        match variant with
        | "w1" -> 0
        | "floor" -> 1
        | "plain" -> 2
        | other -> invalidArg "workload" $"--workload {other}: expected w1, w1-generic, floor, plain, w2, w2-generic, w5, w5-generic or cnf."
    let _, _, manual, steps = w1Variants ()
    use _ = manual
    Measure.time 20 iterations steps[index]

/// W1, its measured floor (the same kernels without autograd, solver or modules; Floor.fs) and, for reference, W1
/// as a plain hand-written TorchSharp RK4 loop. Runs are interleaved; the ratio is median over median.
let w1 (repeats: int) =
    let block, trainer, manual, steps = w1Variants ()
    use _ = manual
    // The floor computes W1's gradients: check it against autograd on one batch before timing it.
    let check =
        use _ = torch.NewDisposeScope()
        let x, y = trainer.Sample()
        let parameters = Array.append (block.parameters() |> Array.ofSeq) (trainer.Readout.parameters() |> Array.ofSeq)
        trainer.Optimizer.zero_grad()
        let loss = torch.nn.functional.cross_entropy(trainer.Readout.forward(block.forward x), y)
        loss.backward()
        let autograd = parameters |> Array.map (fun p -> p.grad.clone())
        let _, byHand = manual.Gradients(x, y)
        relativeDifference byHand autograd
    if check > 1e-4 then failwith $"The floor's hand-written gradients differ from autograd's by {check:G3} (relative): the floor is wrong."
    let s = Measure.interleaved 20 repeats steps
    let w1, floor, plainLoop = s[0], s[1], s[2]
    let verdict = if w1.Median <= 40.0 then "meets ≤ 40 ms" else "misses ≤ 40 ms"
    let ratio = w1.Median / floor.Median
    [ timing "W1" "iteration" w1 $"RK4 20 steps, batch 1024, MLP 2-64-64-2, autograd; {verdict}"
      value "W1" "function evaluations" (float block.LastStatistics.FunctionEvaluations) "" "forward"
      timing "W1 floor" "iteration" floor "same kernels by hand: no autograd graph, no solver, no modules (Floor.fs)"
      value "W1 floor" "hand-written gradients vs autograd" check "relative" "largest difference over the parameters"
      value "W1" "ratio to floor (median)" ratio "×" (if ratio <= 1.3 then "meets ≤ 1.3×" else "misses ≤ 1.3×")
      value "W1" "ratio to floor (min)" (w1.Min / floor.Min) "×" "best run over best run"
      timing "W1 plain loop" "iteration" plainLoop "reference: hand-written TorchSharp RK4 with autograd, operators on floats" ]

/// W2: Dopri5, rtol = atol = 1e-5, the adjoint; with function evaluations and the forward error.
let w2 (repeats: int) =
    let block, trainer = Workloads.w2 2
    let s = Measure.time 5 repeats (fun () -> trainer.Step() |> ignore)
    let forward, backward = block.LastStatistics, block.LastBackwardStatistics
    let error =
        use _ = torch.NewDisposeScope()
        use _ = torch.no_grad()
        let x, _ = trainer.Sample()
        let z = block.forward x
        // The reference: a float64 copy of the field, solved by Dopri8 at 1e-11.
        use field64 = Workloads.mlp 64
        Seq.iter2 (fun (target: Modules.Parameter) (source: Modules.Parameter) -> target.copy_(source) |> ignore) (field64.parameters()) (block.VectorField.parameters())
        field64.``to``(torch.float64) |> ignore
        let problem = OdeProblem.create (fun _ v -> field64.forward v) (x.cpu().to_type torch.float64) [| 0.0; 1.0 |]
        use reference = Ode.solve problem Solvers.dopri8 (StepControl.adaptive 1e-11 1e-11)
        relativeError z reference.Final
    let verdict = if s.Median <= 80.0 then "meets ≤ 80 ms" else "misses ≤ 80 ms"
    [ timing "W2" "iteration" s $"Dopri5 rtol = atol = 1e-5, adjoint, batch 1024; {verdict}"
      value "W2" "forward function evaluations" (float forward.FunctionEvaluations) "" $"{forward.AcceptedSteps} accepted, {forward.RejectedSteps} rejected steps (last iteration)"
      value "W2" "backward function evaluations" (float backward.FunctionEvaluations) "" $"{backward.AcceptedSteps} accepted, {backward.RejectedSteps} rejected steps (last iteration)"
      value "W2" "forward error" error "relative" "max |z(1) − reference| / max |reference|; reference: float64 Dopri8 at 1e-11" ]

/// W3: W1's iteration at batch 256 … 16384 (width 64) and width 64 … 1024 (batch 1024).
let w3 () =
    let configurations = [ for b in [ 256; 1024; 4096; 16384 ] -> b, 64 ] @ [ 1024, 256; 1024, 1024 ]
    [ for batch, width in configurations do
        let _, trainer = Workloads.w1 batch width 3
        let s = Measure.timeWithin 3 5 100 8000.0 (fun () -> trainer.Step() |> ignore)
        printfn "  W3 batch %d width %d: %.1f ms" batch width s.Median
        yield timing "W3" $"batch {batch}, width {width}" s "RK4 20 steps, autograd" ]

/// W5: the peer's Galerkin model (GalLinear(2, 64) over a Fourier basis with 5 harmonics, tanh, Linear, tanh, Linear).
let w5 (repeats: int) =
    let block, trainer = Workloads.w5 5
    let s = Measure.time 10 repeats (fun () -> trainer.Step() |> ignore)
    [ timing "W5" "iteration" s "GalLinear(2, 64) over a Fourier basis (11 terms) → tanh → Linear(64, 64) → tanh → Linear(64, 2): the peer's W5 model"
      value "W5" "function evaluations" (float block.LastStatistics.FunctionEvaluations) "" "forward" ]

/// W6: solve-only throughput of the 10,000-dimensional linear ODE with Dopri5 (rtol = atol = 1e-6, t ∈ [0, 10]);
/// the evaluation of f timed alone gives the solver's own cost per step.
let w6 (repeats: int) =
    use problem = new LinearOde.Problem(10000, torch.float32, 6)
    let ode = OdeProblem.create problem.Field problem.X0 [| 0.0; 10.0 |]
    let control = StepControl.adaptive 1e-6 1e-6
    let mutable stats = SolveStatistics.Zero
    let solveTime = Measure.time 3 repeats (fun () ->
        use _ = torch.no_grad()
        use solution = Ode.solve ode Solvers.dopri5 control
        stats <- solution.Statistics)
    let evalTime = Measure.time 100 2000 (fun () ->
        use _ = torch.no_grad()
        use dx = problem.Field 0.0 problem.X0
        ())

    let error =
        use solution = Ode.solve ode Solvers.dopri5 control
        use exact = problem.Exact 10.0
        relativeError solution.Final exact
    let perStep = solveTime.Median / float stats.AcceptedSteps
    let fieldShare = float stats.FunctionEvaluations * evalTime.Median / solveTime.Median
    [ timing "W6" "solve" solveTime "10,000-dim linear ODE, Dopri5 rtol = atol = 1e-6, t ∈ [0, 10], float32, no gradient"
      value "W6" "accepted steps" (float stats.AcceptedSteps) "" $"{stats.RejectedSteps} rejected, {stats.FunctionEvaluations} evaluations"
      value "W6" "throughput" (1000.0 / perStep) "steps/s" $"{perStep * 1000.0:F1} µs per step"
      value "W6" "state updates" (10000.0 * 1000.0 / perStep / 1e6) "M elements·steps/s" ""
      timing "W6" "one evaluation of f" evalTime "3 element-wise kernels"
      value "W6" "share of time in f" fieldShare "" "evaluations × time of f alone / solve time; the rest is the solver"
      value "W6" "error at t = 10" error "relative" "max |x − exact| / max |exact|" ]
