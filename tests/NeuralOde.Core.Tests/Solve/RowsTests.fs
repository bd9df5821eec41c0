/// Per-row status (Rows, RowDiagnosis): a batch with one exploding row reports that row only, and the other rows'
/// results equal a solve of those rows alone.
module NeuralOde.Tests.Solve.RowsTests

open System
open Expecto
open TorchSharp
open NeuralOde
open NeuralOde.Core
open NeuralOde.Tests.Support
open type TorchSharp.torch.nn

/// dx/dt = x², x(t) = x0 / (1 − x0 t): a row with x0 = 5 blows up at t = 0.2, the others stay finite on [0, 1].
let private square: VectorField = fun _ x -> x.square()
let private x0s = [| 0.1; 0.2; 5.0; 0.3 |]
let private exact (x0: float) (t: float) = x0 / (1.0 - x0 * t)
let private times = [| 0.0; 0.1; 0.5; 1.0 |]

/// z ↦ z ⊙ z as a module.
type private Square() =
    inherit torch.nn.Module<torch.Tensor, torch.Tensor>("square")
    override _.forward(z) = z.square()

[<Tests>]
let tests =
    testList "Solve/rows" [
        test "adaptive: the exploding row alone fails, at its blow-up; the others equal a solve of them alone and the exact solution" {
            use x0 = (Tensors.f64 x0s).reshape(4L, 1L)
            let control = StepControl.adaptive 1e-8 1e-10
            use batch = Ode.trySolve (OdeProblem.create square x0 times) Solvers.dopri5 control
            Expect.isFalse (batch.Status = SolveStatus.Succeeded) "the batch solve fails"
            Expect.equal batch.FailedRows [| 2 |] "attributed to row 2"
            use rows = Rows.trySolve (OdeProblem.create square x0 times) Solvers.dopri5 control
            Expect.equal rows.FailedRows [| 2 |] "row 2 only"
            Expect.equal rows.Solves 2 "the batch, then the rest"
            match rows.Rows[2] with
            | Rows.RowStatus.Failed(_, time) -> Expect.floatClose Accuracy.medium time 0.2 "failed where it blows up"
            | other -> failtestf "row 2: %A" other
            let states = Tensors.toArray rows.States |> Array.chunkBySize 4
            // Row 2: x0 at t = 0, its value at t = 0.1 (before the blow-up), NaN after.
            Expect.floatClose Accuracy.high (states[1][2]) (exact 5.0 0.1) "row 2 at t = 0.1"
            Expect.isTrue (Double.IsNaN (states[2][2]) && Double.IsNaN (states[3][2])) "NaN after the failure"
            use others = (Tensors.f64 [| 0.1; 0.2; 0.3 |]).reshape(3L, 1L)
            use alone = Ode.solve (OdeProblem.create square others times) Solvers.dopri5 control
            let aloneStates = Tensors.toArray alone.States |> Array.chunkBySize 3
            for k in 0 .. times.Length - 1 do
                for j, row in [ 0, 0; 1, 1; 2, 3 ] do
                    Expect.equal (states[k][row]) (aloneStates[k][j]) $"row {row} at t = {times[k]} equals the solve of the other rows alone"
                    Expect.floatClose Accuracy.medium (states[k][row]) (exact x0s[row] times[k]) "and the exact solution"
        }
        test "fixed steps: a row that turns Inf or NaN is found from the state; gradients flow to the solved rows" {
            use x0 = (Tensors.f64 [| 0.5; 40.0; -0.5 |]).reshape(3L, 1L).requires_grad_(true)
            use rows = Rows.trySolve (OdeProblem.create square x0 [| 0.0; 1.0 |]) Solvers.rk4 (StepControl.steps 20)
            Expect.equal rows.FailedRows [| 1 |] "row 1 only"
            match rows.Rows[1] with
            | Rows.RowStatus.Failed(failure, _) -> Expect.equal failure OdeFailure.NonFiniteValue "NaN or Inf"
            | other -> failtestf "row 1: %A" other
            use final = rows.States[1L]
            use solved = final.index_select(0L, torch.tensor([| 0L; 2L |]))
            use loss = solved.sum()
            loss.backward()
            let g = Tensors.toArray x0.grad
            // d x(1)/d x0 = 1 / (1 − x0)² for x(t) = x0 / (1 − x0 t), to RK4's accuracy at 20 steps.
            Expect.floatClose { absolute = 1e-4; relative = 1e-4 } g[0] (1.0 / 0.25) "row 0's gradient"
            Expect.floatClose { absolute = 1e-4; relative = 1e-4 } g[2] (1.0 / 2.25) "row 2's gradient"
            Expect.equal g[1] 0.0 "nothing reaches the failed row"
        }
        test "a batch that succeeds is one solve with every row solved; a 0-dim state is one row" {
            use x0 = (Tensors.f64 [| 0.1; 0.2 |]).reshape(2L, 1L)
            use rows = Rows.trySolve (OdeProblem.create square x0 times) Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8)
            Expect.isTrue rows.Succeeded "all solved"
            Expect.equal rows.Solves 1 "one solve"
            use scalar = torch.tensor(10.0, dtype = torch.float64)
            use one = Rows.trySolve (OdeProblem.create square scalar times) Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8)
            Expect.equal one.FailedRows [| 0 |] "the one row failed"
            Expect.equal one.States.shape [| 4L |] "states [T]"
        }
        test "spans: a sample whose span crosses its blow-up fails alone; the others equal their solve alone" {
            use x0 = (Tensors.f64 [| 1.0; 1.0; 1.0 |]).reshape(3L, 1L)
            use t0 = Tensors.f64 [| 0.0; 0.0; 0.0 |]
            use t1 = Tensors.f64 [| 0.5; 2.0; 0.9 |]
            let f (_: torch.Tensor) (x: torch.Tensor) = x.square()
            let control = StepControl.adaptive 1e-8 1e-10
            use rows = Spans.trySolveRows f x0 t0 t1 [| 0.0; 1.0 |] Solvers.dopri5 control
            Expect.equal rows.FailedRows [| 1 |] "x(t) = 1 / (1 − t) blows up at t = 1, inside sample 1's span only"
            let final = Tensors.toArray rows.States[1L]
            Expect.floatClose Accuracy.medium final[0] 2.0 "sample 0: 1 / (1 − 0.5)"
            Expect.floatClose Accuracy.medium final[2] 10.0 "sample 2: 1 / (1 − 0.9)"
        }
        test "a block's TryTrajectory: the sample that blows up fails alone; the others equal the block on them alone" {
            // f(z) = z ⊙ z through a module.
            let field = new Square()
            use block = new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive 1e-8 1e-10, [| 0.0; 1.0 |])
            use x = (Tensors.f64 x0s).reshape(4L, 1L)
            use rows = block.TryTrajectory(x)
            Expect.equal rows.FailedRows [| 2 |] "sample 2 only"
            use others = (Tensors.f64 [| 0.1; 0.2; 0.3 |]).reshape(3L, 1L)
            use alone = block.Trajectory(others)
            let final = Tensors.toArray rows.States[1L]
            let aloneFinal = Tensors.toArray alone.States[1L]
            Expect.equal [| final[0]; final[1]; final[3] |] aloneFinal "the block on the other samples alone"
        }
    ]

