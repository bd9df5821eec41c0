module NeuralOde.Tests.Training.TrainerTests

open System
open System.Threading
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules

let private f64 = torch.float64

/// A small block and regression data (x ↦ 2x), four batches an epoch.
let private setup (sensitivity: Sensitivity) =
    let field = chain [ m (Linear(2L, 8L, dtype = f64)); m (Tanh()); m (Linear(8L, 2L, dtype = f64)) ]
    Tensors.initialize 51 0.5 field
    let block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, sensitivity, [| 0.0; 1.0 |])
    use g = torch.Generator(52UL)
    let data = [ for _ in 1 .. 4 -> let x = torch.randn([| 16L; 2L |], dtype = f64, generator = g) in x, x * 2.0 ]
    block, data

type private Collect() =
    member val Reports = ResizeArray<TrainingProgress>()
    interface IProgress<TrainingProgress> with
        member c.Report p = c.Reports.Add p

[<Tests>]
let tests =
    testSequenced <| testList "Training/trainer" [
        test "fit trains a block: the epoch loss falls; reports carry iterations and forward/backward evaluations" {
            let block, data = setup Sensitivity.adjoint
            use _ = block
            use opt = torch.optim.Adam(block.parameters(), 0.02)
            let collect = Collect()
            let result =
                Trainer.fit block opt (fun (x: torch.Tensor, y: torch.Tensor) -> (block.forward x - y).square().mean()) (fun _ -> data)
                    { Trainer.defaults with Epochs = 5; Progress = Some(collect :> IProgress<_>) }
            Expect.equal result.Outcome TrainingOutcome.Completed "all epochs ran"
            Expect.equal result.Epochs.Length 5 "five epoch reports"
            Expect.isLessThan result.Epochs[4].Loss (0.5 * result.Epochs[0].Loss) $"epoch loss {result.Epochs[0].Loss:F4} → {result.Epochs[4].Loss:F4}"
            Expect.equal collect.Reports.Count (5 * 4 + 5) "an iteration report each, an epoch report each"
            let it = collect.Reports |> Seq.find (fun p -> not p.EndOfEpoch)
            Expect.equal it.ForwardEvaluations 16 "RK4, 4 steps"
            Expect.isGreaterThan it.BackwardEvaluations 0 "the adjoint's backward solve"
        }
        test "early stopping on a validation loss that does not improve; a callback that returns false stops at once" {
            let block, data = setup Sensitivity.Autograd
            use _ = block
            use opt = torch.optim.SGD(block.parameters(), 0.01)
            let loss (x: torch.Tensor, y: torch.Tensor) = (block.forward x - y).square().mean()
            let stopped = Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with Epochs = 10; Validate = Some(fun () -> 1.0); Patience = Some 2 }
            Expect.equal stopped.Outcome TrainingOutcome.EarlyStopped "early stop"
            Expect.equal stopped.Epochs.Length 3 "the first epoch sets the best; two more without improvement"
            Expect.equal stopped.Epochs[0].ValidationLoss (Some 1.0) "validation reported"
            let called = Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with Epochs = 3; OnIteration = Some(fun p -> p.Iteration < 2) }
            Expect.equal called.Outcome TrainingOutcome.StoppedByCallback "stopped by the callback"
            Expect.equal called.Epochs.Length 1 "within the first epoch"
        }
        test "a scheduler is stepped once per epoch" {
            let block, data = setup Sensitivity.Autograd
            use _ = block
            use opt = torch.optim.SGD(block.parameters(), 0.1)
            let scheduler = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
            Trainer.fit block opt (fun (x: torch.Tensor, y: torch.Tensor) -> (block.forward x - y).square().mean()) (fun _ -> data)
                { Trainer.defaults with Epochs = 3; Scheduler = Some scheduler } |> ignore
            Expect.floatClose Accuracy.high (opt.ParamGroups |> Seq.head).LearningRate 0.0125 "0.1 · 0.5³"
        }
        test "a cancellation token stops a forward solve at its next step, and an adjoint's backward solve too" {
            use cts = new CancellationTokenSource()
            use x = Tensors.f64 [| 1.0 |]
            let f: VectorField = fun t v -> (if t > 0.5 then cts.Cancel()); v.neg()
            let e = Raises.raises<OperationCanceledException> (fun () ->
                Cancellation.within cts.Token (fun () -> Ode.odeint f x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 100) |> ignore))
            Expect.stringContains e.Message "cancelled at t = 0.5" "says when"
            use cts2 = new CancellationTokenSource()
            use x0 = (Tensors.f64 [| 1.0 |]).requires_grad_(true)
            let backward = ref false
            let f2: VectorField = fun _ v -> (if backward.Value then cts2.Cancel()); v.neg()
            Cancellation.within cts2.Token (fun () ->
                use solution = Ode.solveWith Sensitivity.adjoint (OdeProblem.create f2 x0 [| 0.0; 1.0 |]) Solvers.rk4 (StepControl.steps 10)
                use loss = solution.Final.sum()
                backward.Value <- true
                Raises.raises<OperationCanceledException> (fun () -> Ode.backward loss) |> ignore)
        }
        test "a non-finite loss, gradient or parameter raises TrainingDivergedException naming it, the epoch and the iteration" {
            let block, data = setup Sensitivity.Autograd
            use _ = block
            use opt = torch.optim.SGD(block.parameters(), 0.01)
            let loss (x: torch.Tensor, y: torch.Tensor) = (block.forward x - y).square().mean()
            // The loss: finite for the first two iterations, NaN at the third.
            let calls = ref 0
            let nanAtThird (xy: torch.Tensor * torch.Tensor) =
                calls.Value <- calls.Value + 1
                let l = loss xy
                if calls.Value = 3 then l * nan else l
            let e = Raises.raises<NeuralOde.TrainingDivergedException> (fun () ->
                Trainer.fit block opt nanAtThird (fun _ -> data) { Trainer.defaults with Epochs = 2 } |> ignore)
            Expect.equal (e.What, e.Epoch, e.Iteration, e.Parameter) ("loss", 1, 3, null) "the loss, epoch 1, iteration 3"
            Expect.stringContains e.Message "iteration 3" "the message says where"
            // A gradient: sqrt at 0 has an infinite derivative; the last layer's bias is the first to see it.
            let bias = (block.VectorField.named_parameters() |> Seq.last |> fun struct (_, p) -> p)
            let kink (xy: torch.Tensor * torch.Tensor) = loss xy + (bias - bias.detach()).abs().sqrt().sum()
            let g = Raises.raises<NeuralOde.TrainingDivergedException> (fun () ->
                Trainer.fit block opt kink (fun _ -> data) Trainer.defaults |> ignore)
            Expect.equal g.What "gradient" "a gradient"
            Expect.equal g.Parameter "vector_field.2.bias" "the parameter named as named_parameters names it"
            Expect.equal g.Iteration 1 "at the first iteration"
            // A parameter after the step: an infinite learning rate.
            use wild = torch.optim.SGD(block.parameters(), infinity)
            let p = Raises.raises<NeuralOde.TrainingDivergedException> (fun () ->
                Trainer.fit block wild loss (fun _ -> data) Trainer.defaults |> ignore)
            Expect.equal (p.What, p.Iteration) ("parameter", 1) "a parameter after the first step"
            Expect.stringContains p.Message "after the optimizer's step" "says when"
        }
        test "an epoch with no batches is refused; a checkpoint path that cannot be written is refused before training" {
            let block, data = setup Sensitivity.Autograd
            use _ = block
            use opt = torch.optim.SGD(block.parameters(), 0.01)
            let trained = ref 0
            let loss (x: torch.Tensor, y: torch.Tensor) = trained.Value <- trained.Value + 1; (block.forward x - y).square().mean()
            let e = Raises.raises<ArgumentException> (fun () -> Trainer.fit block opt loss (fun _ -> Seq.empty) Trainer.defaults |> ignore)
            Expect.equal e.ParamName "batches" "names the argument"
            Expect.stringContains e.Message "epoch 1" "says which epoch"
            let file = IO.Path.GetTempFileName()
            try
                // A path under a regular file: its folder cannot exist.
                let path = IO.Path.Combine(file, "model.ckpt")
                let c = Raises.raises<IO.IOException> (fun () ->
                    Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with CheckpointPath = Some path } |> ignore)
                Expect.stringContains c.Message path "names the path"
                Expect.equal trained.Value 0 "nothing was trained"
            finally IO.File.Delete file
        }
    ]
