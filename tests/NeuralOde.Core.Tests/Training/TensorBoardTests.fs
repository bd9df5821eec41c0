module NeuralOde.Tests.Training.TensorBoardTests

open System
open System.IO
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules

let private f64 = torch.float64

/// A tiny block solved by dopri5 (so steps are counted by error control) with adjoint gradients, and three batches.
let private setup () =
    let field = chain [ m (Linear(2L, 4L, dtype = f64)); m (Tanh()); m (Linear(4L, 2L, dtype = f64)) ]
    Tensors.initialize 61 0.5 field
    let block = new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive 1e-4 1e-4, Sensitivity.adjoint, [| 0.0; 1.0 |])
    use g = torch.Generator(62UL)
    let data = [ for _ in 1 .. 3 -> let x = torch.randn([| 8L; 2L |], dtype = f64, generator = g) in x, x * 2.0 ]
    block, data

type private Collect() =
    member val Reports = ResizeArray<TrainingProgress>()
    interface IProgress<TrainingProgress> with
        member c.Report p = c.Reports.Add p

let private temporaryFolder () = Path.Combine(Path.GetTempPath(), $"neuralode-tb-{Guid.NewGuid():N}")

/// What the log must hold for the reports: (tag, step, value as float32), in order.
let private expected (reports: TrainingProgress seq) =
    [ for p in reports do
        if p.EndOfEpoch then
            yield "loss/epoch_mean", int64 p.Iteration, float32 p.Loss
            match p.ValidationLoss with Some v -> yield "loss/validation", int64 p.Iteration, float32 v | None -> ()
        else
            for tag, value in [ "loss", p.Loss; "nfe/forward", float p.ForwardEvaluations; "nfe/backward", float p.BackwardEvaluations
                                "steps/accepted", float p.AcceptedSteps; "steps/rejected", float p.RejectedSteps
                                "time/iteration_seconds", p.Duration.TotalSeconds ] ->
                tag, int64 p.Iteration, float32 value ]

[<Tests>]
let tests =
    testSequenced <| testList "Training/tensorboard" [
        test "the reader's CRC32C is the standard one (\"123456789\" → 0xE3069283)" {
            Expect.equal (EventFiles.crc32c "123456789"B 0 9) 0xE3069283u "the check value of CRC-32C"
        }
        test "fit writes every report to a TensorBoard event file: tags, steps and float32 values read back with the CRCs checked" {
            let block, data = setup ()
            use _ = block
            use opt = torch.optim.Adam(block.parameters(), 0.01)
            let loss (x: torch.Tensor, y: torch.Tensor) = (block.forward x - y).square().mean()
            let validate () = let x, y = data[0] in (loss (x, y)).ToDouble()
            let collect = Collect()
            let folder = temporaryFolder ()
            try
                let before = DateTimeOffset.UtcNow.ToUnixTimeSeconds()
                Trainer.fit block opt loss (fun _ -> data)
                    { Trainer.defaults with Epochs = 2; Validate = Some validate; Progress = Some(collect :> IProgress<_>); TensorBoardDirectory = Some folder }
                |> ignore
                let file = Expect.wantSome (EventFiles.files folder |> Array.tryExactlyOne) "one event file in the folder"
                let first = EventFiles.events file |> List.head
                Expect.equal first.FileVersion "brain.Event:2" "the file starts with its version event"
                let scalars = EventFiles.scalars file
                Expect.sequenceEqual [ for s in scalars -> s.Tag, s.Step, s.Value ] (expected collect.Reports) "every report's values, tags and steps, in order"
                Expect.equal scalars.Length (2 * 3 * 6 + 2 * 2) "six scalars an iteration, two an epoch"
                let iterations = collect.Reports |> Seq.filter (fun p -> not p.EndOfEpoch) |> List.ofSeq
                Expect.all iterations (fun p -> p.AcceptedSteps > 0 && p.ForwardEvaluations > 0 && p.BackwardEvaluations > 0) "dopri5 steps and evaluations counted, adjoint backward too"
                Expect.all iterations (fun p -> p.Duration > TimeSpan.Zero && p.Duration <= p.Elapsed) "each iteration's time is within the elapsed time"
                Expect.all scalars (fun s -> s.WallTime >= float before && s.WallTime < float before + 600.0) "wall times are Unix seconds of the run"
                // The reader is not vacuous: one flipped byte in the last record's data fails its CRC.
                let copy = Path.Combine(folder, "flipped")
                let bytes = File.ReadAllBytes file
                bytes[bytes.Length - 5] <- bytes[bytes.Length - 5] ^^^ 1uy
                File.WriteAllBytes(copy, bytes)
                let e = Raises.raises<Exception> (fun () -> EventFiles.records copy |> ignore)
                Expect.stringContains e.Message "data's CRC is wrong" "a corrupted record is detected"
            finally
                if Directory.Exists folder then Directory.Delete(folder, true)
        }
        test "a TensorBoard folder that cannot be written is refused before the first epoch, naming it; a failing run leaves its events" {
            let block, data = setup ()
            use _ = block
            use opt = torch.optim.SGD(block.parameters(), 0.01)
            let trained = ref 0
            let loss (x: torch.Tensor, y: torch.Tensor) =
                trained.Value <- trained.Value + 1
                if trained.Value = 3 then raise (InvalidOperationException "the third batch fails")
                (block.forward x - y).square().mean()
            let file = Path.GetTempFileName()
            try
                // A folder under a regular file cannot exist.
                let under = Path.Combine(file, "runs")
                let e = Raises.raises<IOException> (fun () ->
                    Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with TensorBoardDirectory = Some under } |> ignore)
                Expect.stringContains e.Message under "names the folder"
                Expect.equal trained.Value 0 "nothing was trained"
                let a = Raises.raises<ArgumentException> (fun () ->
                    Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with TensorBoardDirectory = Some " " } |> ignore)
                Expect.equal a.ParamName "tensorBoardDirectory" "an empty folder name names the argument"
            finally File.Delete file
            let folder = temporaryFolder ()
            try
                Raises.raises<InvalidOperationException> (fun () ->
                    Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with TensorBoardDirectory = Some folder } |> ignore) |> ignore
                let scalars = EventFiles.scalars (EventFiles.files folder |> Array.exactlyOne)
                Expect.equal (scalars |> List.map (fun s -> s.Step) |> List.distinct) [ 1L; 2L ] "the two iterations before the failure, complete"
                Expect.equal scalars.Length 12 "six scalars each"
            finally
                if Directory.Exists folder then Directory.Delete(folder, true)
        }
    ]
