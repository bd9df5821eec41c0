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
    ]
