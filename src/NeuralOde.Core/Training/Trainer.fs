/// Training the way people train: epochs of batches, any TorchSharp optimizer and scheduler, progress reports with
/// the function evaluations of every solving module, evaluation, early stopping, callbacks, and a cancellation token
/// that reaches every solve (each step, forward and backward: Cancellation).
namespace NeuralOde.Core

open System
open System.Diagnostics
open System.Threading
open TorchSharp
open type TorchSharp.torch.nn

/// One report: after each iteration, and (with ValidationLoss) after each epoch's evaluation.
type TrainingProgress =
    { /// The epoch, from 1.
      Epoch: int
      /// The iteration, from 1, counted over all epochs.
      Iteration: int
      /// The training loss of this iteration (or the epoch's mean, in an end-of-epoch report).
      Loss: float
      /// Function evaluations of the forward solves of this iteration (all solving modules of the model).
      ForwardEvaluations: int
      /// Function evaluations of the backward solves of this iteration (adjoint sensitivities).
      BackwardEvaluations: int
      /// Steps accepted by the forward solves of this iteration (all solving modules; 0 in an end-of-epoch report).
      AcceptedSteps: int
      /// Steps rejected by the error control of the forward solves of this iteration (0 in an end-of-epoch report).
      RejectedSteps: int
      /// Wall time of this iteration (loss, gradients and the optimizer's step), or of the whole epoch (its
      /// iterations, the scheduler and the validation) in an end-of-epoch report.
      Duration: TimeSpan
      /// Time since training started.
      Elapsed: TimeSpan
      /// The validation loss, in the end-of-epoch report when a validation function was given.
      ValidationLoss: float option
      /// True for an end-of-epoch report.
      EndOfEpoch: bool }

/// Why training ended (NeuralOde.TrainingOutcome, shared with the C# facade).
type TrainingOutcome = NeuralOde.TrainingOutcome

/// Everything about a run but the model, the optimizer, the loss and the data.
type TrainerOptions =
    { /// Number of epochs (≥ 1).
      Epochs: int
      /// A learning-rate scheduler, stepped after each epoch.
      Scheduler: torch.optim.lr_scheduler.LRScheduler option
      /// A validation loss computed after each epoch (without gradients).
      Validate: (unit -> float) option
      /// Stop when the monitored loss has not improved for this many epochs.
      Patience: int option
      /// Receives every report.
      Progress: IProgress<TrainingProgress> option
      /// Called after every iteration; returning false stops training.
      OnIteration: (TrainingProgress -> bool) option
      /// Cancels training, and every solve in it at its next step (OperationCanceledException).
      Cancellation: CancellationToken
      /// Save a checkpoint (Checkpoint.save: model, optimizer, position) here after every epoch.
      CheckpointPath: string option
      /// Continue from a loaded checkpoint's position (Checkpoint.load): epochs after its Epoch, iterations counted
      /// on from its Iteration, early stopping from its best loss.
      Resume: Checkpoint.CheckpointState option
      /// Write TensorBoard event files to this folder (made when missing; TorchSharp's SummaryWriter): at each
      /// iteration "loss", "nfe/forward", "nfe/backward", "steps/accepted", "steps/rejected" and
      /// "time/iteration_seconds"; at each epoch's end "loss/epoch_mean" and, with Validate, "loss/validation"; the
      /// step is the iteration (an epoch's values at its last iteration), the values float32 and equal to the reports'.
      TensorBoardDirectory: string option
      /// Data-parallel training over the ranks of this world (Distributed.initialize): rank 0's parameters are
      /// broadcast at the start; each rank's loss is of its shard of every batch (`batches` yields shards:
      /// Distributed.shard), and after each backward pass the gradients are averaged over the ranks
      /// (Distributed.allReduceGradients, any sensitivity); the reported loss is the ranks' mean. Progress, the
      /// callback, TensorBoard and checkpoints run on rank 0 only (the callback's decision reaches every rank); the
      /// validation loss is the ranks' mean. A failure on any rank raises on every rank (that rank its own
      /// exception, the others DistributedException naming it), so none is left waiting.
      World: World option }

/// The result of a run: the end-of-epoch reports, and why it ended.
type TrainingResult =
    { /// One report per epoch run, in order (EndOfEpoch set, with the mean loss and the validation loss).
      Epochs: TrainingProgress list
      /// Why training ended.
      Outcome: TrainingOutcome }

/// Training loops: `fit` with `defaults` as the starting options.
module Trainer =
    /// One epoch, no scheduler, no validation, no reports.
    let defaults =
        { Epochs = 1; Scheduler = None; Validate = None; Patience = None; Progress = None; OnIteration = None
          Cancellation = CancellationToken.None; CheckpointPath = None; Resume = None; TensorBoardDirectory = None
          World = None }

    /// The solving modules inside `model` (itself included).
    let private solvers (model: Module) =
        ModuleField.tree model |> List.choose (fun m -> match box m with :? ISolveStatistics as s -> Some s | _ -> None) |> Array.ofList

    /// Trains `model` with `optimizer`: for each epoch, for each batch of `batches epoch`, the gradients of
    /// `loss batch` (a 0-dim tensor) by Ode.backward (an adjoint's failure raises as itself), then an optimizer step;
    /// every iteration in a dispose scope of its own. Returns the end-of-epoch reports and why training ended.
    /// A non-finite loss, gradient or parameter raises TrainingDivergedException naming it, the epoch and the
    /// iteration (FiniteGuard); an epoch with no batches raises ArgumentException; a checkpoint path or a TensorBoard
    /// directory that cannot be written raises before the first epoch (IOException naming it). TensorBoard events are
    /// written as they are reported, so a run that fails leaves them complete up to the failure. With a World of
    /// several ranks, training is data-parallel (see TrainerOptions.World); a failure on any rank raises on every rank.
    let fit (model: Module) (optimizer: torch.optim.Optimizer) (loss: 'batch -> torch.Tensor) (batches: int -> seq<'batch>)
            (options: TrainerOptions) : TrainingResult =
        if isNull model then raise (ArgumentNullException("model"))
        if isNull optimizer then raise (ArgumentNullException("optimizer"))
        if isNull (box loss) then raise (ArgumentNullException("loss"))
        if isNull (box batches) then raise (ArgumentNullException("batches"))
        Internal.Guard.positiveCount "epochs" options.Epochs
        options.Patience |> Option.iter (Internal.Guard.positiveCount "patience")
        options.Resume |> Option.iter (fun r ->
            if r.Epoch < 0 || r.Epoch > options.Epochs then
                raise (ArgumentOutOfRangeException("resume", r.Epoch, $"The checkpoint's epoch must be between 0 and epochs = {options.Epochs}; got {r.Epoch}.")))
        let world = options.World |> Option.defaultWith Distributed.local
        let distributed = world.Size > 1
        if world.IsRoot then options.CheckpointPath |> Option.iter Checkpoint.checkWritable
        let log = if world.IsRoot then options.TensorBoardDirectory |> Option.map TensorBoardLog.create else None
        let logScalars (step: int) (values: (string * float) list) = log |> Option.iter (fun w -> TensorBoardLog.scalars w step values)
        Native.OneDnnCheck.ensureCorrect () |> ignore
        if distributed then
            // Every rank takes part, with or without a checkpoint: a rank that found none resumes from (0, 0).
            let r = options.Resume |> Option.defaultValue { Epoch = 0; Iteration = 0; BestLoss = Double.PositiveInfinity }
            DistributedStep.resume world r.Epoch r.Iteration
            Distributed.broadcastParameters world model
        let solving = solvers model
        let watch = Stopwatch.StartNew()
        let report (p: TrainingProgress) = if world.IsRoot then options.Progress |> Option.iter (fun r -> r.Report p)
        let epochs = ResizeArray<TrainingProgress>()
        let mutable iteration = options.Resume |> Option.map (fun r -> r.Iteration) |> Option.defaultValue 0
        let mutable best = options.Resume |> Option.map (fun r -> r.BestLoss) |> Option.defaultValue Double.PositiveInfinity
        let mutable sinceBest = 0
        let mutable outcome = TrainingOutcome.Completed
        let mutable epoch = 1 + (options.Resume |> Option.map (fun r -> r.Epoch) |> Option.defaultValue 0)
        Cancellation.within options.Cancellation (fun () ->
            while outcome = TrainingOutcome.Completed && epoch <= options.Epochs do
                let mutable sum, count = 0.0, 0
                let epochStarted = watch.Elapsed
                use enumerator = (batches epoch).GetEnumerator()
                let mutable more = true
                while outcome = TrainingOutcome.Completed && more do
                    use scope = torch.NewDisposeScope()
                    let started = watch.Elapsed
                    // The loss and its backward pass; with several ranks a failure is held until every rank knows.
                    let hadBatch, failure, local =
                        try
                            options.Cancellation.ThrowIfCancellationRequested()
                            if enumerator.MoveNext() then
                                optimizer.zero_grad()
                                let value = loss enumerator.Current
                                if isNull value then raise (InvalidOperationException("The loss function returned null."))
                                if value.numel() <> 1L then
                                    raise (InvalidOperationException($"The loss must be a single number (a 0-dim tensor); it has shape {Internal.TensorOps.shapeText value}."))
                                FiniteGuard.loss epoch (iteration + 1) value
                                Ode.backward value
                                true, null, value.ToDouble()
                            else false, null, nan
                        with e when distributed -> true, e, nan
                    match (if distributed then DistributedStep.iteration world epoch (iteration + 1) hadBatch failure local
                           elif hadBatch then Some local else None) with
                    | None -> more <- false
                    | Some l ->
                    iteration <- iteration + 1
                    if distributed then Distributed.allReduceGradients world model
                    FiniteGuard.gradients epoch iteration model
                    optimizer.step() |> ignore
                    FiniteGuard.parameters epoch iteration model
                    sum <- sum + l
                    count <- count + 1
                    let p =
                        { Epoch = epoch; Iteration = iteration; Loss = l
                          ForwardEvaluations = solving |> Array.sumBy (fun s -> s.LastStatistics.FunctionEvaluations)
                          BackwardEvaluations = solving |> Array.sumBy (fun s -> s.LastBackwardStatistics.FunctionEvaluations)
                          AcceptedSteps = solving |> Array.sumBy (fun s -> s.LastStatistics.AcceptedSteps)
                          RejectedSteps = solving |> Array.sumBy (fun s -> s.LastStatistics.RejectedSteps)
                          Duration = watch.Elapsed - started
                          Elapsed = watch.Elapsed; ValidationLoss = None; EndOfEpoch = false }
                    logScalars p.Iteration
                        [ "loss", p.Loss; "nfe/forward", float p.ForwardEvaluations; "nfe/backward", float p.BackwardEvaluations
                          "steps/accepted", float p.AcceptedSteps; "steps/rejected", float p.RejectedSteps
                          "time/iteration_seconds", p.Duration.TotalSeconds ]
                    report p
                    let stops =
                        match options.OnIteration with
                        | Some callback when world.IsRoot -> not (callback p)
                        | _ -> false
                    if (if distributed then DistributedStep.stop world stops else stops) then
                        outcome <- TrainingOutcome.StoppedByCallback
                if count = 0 && outcome = TrainingOutcome.Completed then
                    raise (ArgumentException($"The batches of epoch {epoch} are empty: there is nothing to train on. Give at least one batch per epoch.", "batches"))
                options.Scheduler |> Option.iter (fun s -> s.step())
                let validation =
                    let own =
                        options.Validate |> Option.map (fun v ->
                            use _ = torch.no_grad()
                            use _ = torch.NewDisposeScope()
                            v ())
                    if distributed then DistributedStep.validation world own else own
                let mean = if count = 0 then nan else sum / float count
                let summary =
                    { Epoch = epoch; Iteration = iteration; Loss = mean; ForwardEvaluations = 0; BackwardEvaluations = 0
                      AcceptedSteps = 0; RejectedSteps = 0; Duration = watch.Elapsed - epochStarted
                      Elapsed = watch.Elapsed; ValidationLoss = validation; EndOfEpoch = true }
                if count > 0 then
                    logScalars iteration
                        [ yield "loss/epoch_mean", mean
                          match validation with Some v -> yield "loss/validation", v | None -> () ]
                epochs.Add summary
                report summary
                let monitored = defaultArg validation mean
                if monitored < best then
                    best <- monitored
                    sinceBest <- 0
                else sinceBest <- sinceBest + 1
                match options.Patience with
                | Some patience when outcome = TrainingOutcome.Completed && sinceBest >= patience -> outcome <- TrainingOutcome.EarlyStopped
                | _ -> ()
                if world.IsRoot then
                    options.CheckpointPath |> Option.iter (fun path ->
                        Checkpoint.save path model optimizer { Epoch = epoch; Iteration = iteration; BestLoss = best })
                epoch <- epoch + 1)
        { Epochs = List.ofSeq epochs; Outcome = outcome }
