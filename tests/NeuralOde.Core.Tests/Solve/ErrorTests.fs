/// Bad input and failed solves raise exceptions whose messages name the problem and the value or time.
module NeuralOde.Tests.Solve.ErrorTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises

let private decay: VectorField = fun _ x -> x.neg()
let private x0 () = Tensors.f64 [| 1.0; 2.0 |]
let private solveWith control times = (use x = x0 () in Ode.odeint decay x times Solvers.dopri5 control |> ignore)
let private adaptiveWith (edit: AdaptiveOptions -> AdaptiveOptions) = StepControl.Adaptive(edit StepControl.defaults)

[<Tests>]
let tests =
    testList "Solve/errors" [
        // A .NET exception thrown inside the adjoint's backward (a TorchSharp callback from libtorch's engine) used to
        // end the process ("Unhandled exception" from the native callback). The failure must reach the caller.
        for name, sensitivity in Sensitivities.adjointMethods do
            for stateRequiresGrad in [ true; false ] do
                let which = if stateRequiresGrad then "x0" else "a parameter only"
                test $"{name}: a backward solve that meets Inf raises (gradients wanted for {which})" {
                    use x0 = torch.ones([| 3L; 2L |], dtype = torch.float64)
                    if stateRequiresGrad then x0.requires_grad_(true) |> ignore
                    use w = torch.ones([| 2L |], dtype = torch.float64).requires_grad_(true)
                    use one = torch.ones([| 3L; 2L |], dtype = torch.float64)
                    // x stays at 1, where √|x − 1| has an infinite derivative: the forward is fine, the adjoint is not.
                    let f: VectorField = fun _ x -> (x - one).abs().sqrt() * w
                    let problem = OdeProblem.create f x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ w ]
                    let attempt (backward: torch.Tensor -> unit) =
                        use solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-6 1e-6)
                        use loss = solution.Final.sum()
                        backward loss
                    // loss.backward() raises libtorch's complaint instead of ending the process ...
                    let plain = raises<System.Runtime.InteropServices.ExternalException> (fun () -> attempt (fun l -> l.backward()))
                    Expect.stringContains plain.Message "invalid gradient" "libtorch rejects the gradient it was handed"
                    // ... and Ode.backward raises the backward solve's own exception, with the time.
                    let e = raises<OdeSolveException> (fun () -> attempt Ode.backward)
                    Expect.equal e.Failure OdeFailure.NonFiniteValue "the failure"
                    Expect.stringContains e.Message "backward solve failed" "says it was the backward solve"
                    Expect.isNotNull e.InnerException "the backward solve's exception inside"
                }
        test "an exception from the vector field during the adjoint's backward reaches Ode.backward" {
            use x0 = torch.ones([| 2L |], dtype = torch.float64).requires_grad_(true)
            let mutable backwardPhase = false
            let f: VectorField = fun _ x -> if backwardPhase then failwith "field failed" else x.neg()
            let problem = OdeProblem.create f x0 [| 0.0; 1.0 |]
            use solution = Ode.solveWith Sensitivity.adjoint problem Solvers.dopri5 (StepControl.adaptive 1e-6 1e-6)
            use loss = solution.Final.sum()
            backwardPhase <- true
            let e = raises<OdeSolveException> (fun () -> Ode.backward loss)
            Expect.equal e.Failure OdeFailure.VectorFieldFailed "the failure"
            Expect.equal (e.GetBaseException().Message) "field failed" "the field's own exception at the bottom"
        }
        // A batch of none (an empty last batch, say) is not an error: there is nothing to integrate. The RMS error
        // norm of nothing was 0/0, which rejected every step until the step budget ran out.
        for solver in Solvers.all do
            let control = if solver.E.IsSome then StepControl.adaptive 1e-6 1e-8 else StepControl.steps 4
            test $"an empty state (batch of none) solves to empty states ({solver.Name})" {
                use x = torch.zeros([| 0L; 2L |], dtype = torch.float64)
                use solution = Ode.odeint decay x [| 0.0; 0.5; 1.0 |] solver control
                Expect.equal solution.States.shape [| 3L; 0L; 2L |] "one empty state per output time"
                Expect.isLessThan (solution.Statistics.AcceptedSteps + solution.Statistics.RejectedSteps) 40 "a few steps, not the budget"
            }
        test "a non-monotonic time grid names the offending points" {
            let e = raises<ArgumentException> (fun () -> solveWith (StepControl.adaptive 1e-6 1e-8) [| 0.0; 1.0; 0.5; 2.0 |])
            Expect.equal e.ParamName "times" "names the argument"
            Expect.stringContains e.Message "strictly increasing" "says what is expected"
            Expect.stringContains e.Message "times[2] = 0.5" "names the bad value"
        }
        test "an empty span is refused" {
            let e = raises<ArgumentException> (fun () -> solveWith (StepControl.adaptive 1e-6 1e-8) [| 1.0; 1.0 |])
            Expect.stringContains e.Message "empty interval" "says the span is empty"
        }
        // Found by the random malformed-input suite: a float16 state on [0, 1e12] made libtorch raise an untyped
        // "cannot be converted to type c10::Half without overflow" from inside the step (TrySolve let it escape).
        test "times beyond what a float16 state can hold are refused by name" {
            use x0 = torch.ones([| 2L |], dtype = torch.float16)
            let e = Raises.raises<System.ArgumentException> (fun () -> OdeProblem.create (fun _ x -> x) x0 [| 0.0; 1e12 |] |> ignore)
            Expect.equal e.ParamName "times" "names the times"
            Expect.stringContains e.Message "Float16" "and the dtype"
            use fine = torch.ones([| 2L |], dtype = torch.float32)
            OdeProblem.create (fun _ x -> x) fine [| 0.0; 1e12 |] |> ignore
        }
        test "a single time point is refused" {
            let e = raises<ArgumentException> (fun () -> solveWith (StepControl.adaptive 1e-6 1e-8) [| 1.0 |])
            Expect.stringContains e.Message "at least a start and an end" "says what is missing"
        }
        test "a non-finite time is refused" {
            let e = raises<ArgumentException> (fun () -> solveWith (StepControl.adaptive 1e-6 1e-8) [| 0.0; nan |])
            Expect.stringContains e.Message "times[1] is NaN" "names the value"
        }
        for name, control in [ "rtol", StepControl.adaptive 0.0 1e-8; "rtol", StepControl.adaptive nan 1e-8
                               "atol", StepControl.adaptive 1e-6 -1.0; "dt", StepControl.fixedStep 0.0
                               "maxSteps", adaptiveWith (fun o -> { o with MaxSteps = 0 }) ] do
            test $"a non-positive or NaN {name} is refused with its value ({control})" {
                let e = raises<ArgumentOutOfRangeException> (fun () -> solveWith control [| 0.0; 1.0 |])
                Expect.equal e.ParamName name "names the argument"
                Expect.stringContains e.Message "got" "gives the value"
            }
        test "adaptive control with a fixed-step solver is refused" {
            let e = raises<ArgumentException> (fun () -> (use x = x0 () in Ode.odeint decay x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.adaptive 1e-6 1e-8) |> ignore))
            Expect.stringContains e.Message "rk4" "names the solver"
        }
        test "NaN in the initial state is refused" {
            let e = raises<ArgumentException> (fun () -> (use x = Tensors.f64 [| 1.0; nan |] in Ode.odeint decay x [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore))
            Expect.equal e.ParamName "x0" "names the argument"
        }
        test "NaN from the vector field stops the solve with the time" {
            let f: VectorField = fun t x -> if t > 0.3 then x.mul(Scalar.op_Implicit nan) else x.neg()
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 10) |> ignore))
            Expect.equal e.Failure OdeFailure.NonFiniteValue "kind"
            Expect.stringContains e.Message "NaN or Inf" "says what"
            // Steps of 0.1: the step from t = 0.2 is the first whose stages reach past t = 0.3.
            Expect.floatClose Accuracy.high e.Time 0.2 "the start of the step in which f went bad"
            Expect.stringContains e.Message "from t = 0.2 to 0.3" "the step in the message"
        }
        test "NaN after an output time is located in its step, not at the next output" {
            // Fixed steps read their finiteness flags once per output; the step must still be the one where f went bad.
            let f: VectorField = fun t x -> if t > 0.65 then x.mul(Scalar.op_Implicit nan) else x.neg()
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 0.5; 1.0 |] Solvers.rk4 (StepControl.fixedStep 0.1) |> ignore))
            Expect.equal e.Failure OdeFailure.NonFiniteValue "kind"
            Expect.floatClose Accuracy.high e.Time 0.6 "the start of the step in which f went bad"
            Expect.stringContains e.Message "from t = 0.6" "the step in the message"
        }
        test "NaN late in a long fixed-step solve is located in its step (flags read in blocks)" {
            // 100 steps: the flags buffer is read after 64 steps and again at the output.
            let f: VectorField = fun t x -> if t > 0.705 then x.mul(Scalar.op_Implicit nan) else x.neg()
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 100) |> ignore))
            Expect.equal e.Failure OdeFailure.NonFiniteValue "kind"
            Expect.isLessThan (abs (e.Time - 0.70)) 1e-9 $"the step from 0.70 (got {e.Time})"
        }
        test "NaN early in a long fixed-step solve is reported in the first block" {
            let f: VectorField = fun t x -> if t > 0.105 then x.mul(Scalar.op_Implicit nan) else x.neg()
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 100) |> ignore))
            Expect.isLessThan (abs (e.Time - 0.10)) 1e-9 $"the step from 0.10 (got {e.Time})"
        }
        test "NaN from the vector field at the start stops an adaptive solve at once" {
            let f: VectorField = fun _ x -> x.mul(Scalar.op_Implicit nan)
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.Adaptive { StepControl.defaults with InitialStep = Some 0.1 }) |> ignore))
            Expect.equal e.Failure OdeFailure.NonFiniteValue "kind"
            Expect.equal e.Time 0.0 "time"
        }
        test "a blow-up becomes a step-size underflow that names the time" {
            // x' = x², x(0) = 1: x = 1/(1 − t) blows up at t = 1.
            let f: VectorField = fun _ x -> x.square()
            let e = raises<OdeSolveException> (fun () -> (use x = Tensors.f64 [| 1.0 |] in Ode.odeint f x [| 0.0; 2.0 |] Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore))
            Expect.equal e.Failure OdeFailure.StepSizeUnderflow "kind"
            Expect.isLessThan (abs (e.Time - 1.0)) 1e-3 $"near the singularity (t = {e.Time})"
            Expect.stringContains e.Message $"Step size underflow at t = {e.Time}" "time in the message"
            Expect.stringContains e.Message "step h = " "step in the message"
        }
        test "the step budget running out names the budget and the time" {
            let e = raises<OdeSolveException> (fun () ->
                (use x = x0 () in Ode.odeint (Problems.linear Problems.oscillatory) x [| 0.0; 50.0 |] Solvers.dopri5 (adaptiveWith (fun o -> { o with MaxSteps = 7 })) |> ignore))
            Expect.equal e.Failure OdeFailure.MaxStepsExceeded "kind"
            Expect.stringContains e.Message "step budget of 7 steps" "names the budget"
            Expect.isLessThan e.Time 50.0 "before the end"
        }
        test "a vector field returning the wrong shape is named" {
            let f: VectorField = fun _ x -> torch.cat(([| x; x |]: torch.Tensor[]), 0L)
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore))
            Expect.equal e.Failure OdeFailure.VectorFieldMismatch "kind"
            Expect.stringContains e.Message "shape" "says shape"
            Expect.stringContains e.Message "[2]" "state shape"
            Expect.stringContains e.Message "[4]" "returned shape"
        }
        test "a vector field returning the wrong dtype is named" {
            let f: VectorField = fun _ x -> x.to_type(torch.float32)
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 4) |> ignore))
            Expect.stringContains e.Message "dtype" "says dtype"
            Expect.stringContains e.Message "Float32" "names the returned dtype"
        }
        test "a vector field returning a tensor on another device is named (CUDA only)" {
            if not (torch.cuda.is_available ()) then skiptest "no CUDA device on this machine"
            let f: VectorField = fun _ x -> x.cuda()
            let e = raises<OdeSolveException> (fun () -> (use x = x0 () in Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 4) |> ignore))
            Expect.stringContains e.Message "device" "says device"
        }
        test "an integer initial state is refused" {
            let e = raises<ArgumentException> (fun () -> (use x = torch.ones([| 2L |], dtype = torch.int64) in Ode.odeint decay x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 4) |> ignore))
            Expect.stringContains e.Message "floating-point" "says what is expected"
        }
    ]
