using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>One report of a <see cref="Trainer{TBatch}"/>: after each iteration, and after each epoch
/// (<see cref="EndOfEpoch"/>, with the epoch's mean loss and the validation loss).</summary>
/// <param name="Epoch">The epoch, from 1.</param>
/// <param name="Iteration">The iteration, from 1, over all epochs.</param>
/// <param name="Loss">The iteration's loss, or the epoch's mean in an end-of-epoch report.</param>
/// <param name="ForwardEvaluations">Function evaluations of the iteration's forward solves (every solving module).</param>
/// <param name="BackwardEvaluations">Function evaluations of its backward solves (adjoint sensitivities).</param>
/// <param name="Elapsed">Time since training started.</param>
/// <param name="ValidationLoss">The validation loss, in an end-of-epoch report when a validation function was given.</param>
/// <param name="EndOfEpoch">True for an end-of-epoch report.</param>
public sealed record TrainingProgress(int Epoch, int Iteration, double Loss, int ForwardEvaluations, int BackwardEvaluations,
                                      TimeSpan Elapsed, double? ValidationLoss, bool EndOfEpoch)
{
    /// <summary>Steps accepted by the iteration's forward solves (every solving module); 0 in an end-of-epoch report.</summary>
    public int AcceptedSteps { get; init; }

    /// <summary>Steps rejected by the error control of the iteration's forward solves; 0 in an end-of-epoch report.</summary>
    public int RejectedSteps { get; init; }

    /// <summary>Wall time of the iteration (loss, gradients, optimizer step), or of the whole epoch (its iterations,
    /// the scheduler and the validation) in an end-of-epoch report.</summary>
    public TimeSpan Duration { get; init; }

    internal static TrainingProgress From(Core.TrainingProgress p) =>
        new(p.Epoch, p.Iteration, p.Loss, p.ForwardEvaluations, p.BackwardEvaluations, p.Elapsed,
            p.ValidationLoss is null ? null : p.ValidationLoss.Value, p.EndOfEpoch)
        {
            AcceptedSteps = p.AcceptedSteps,
            RejectedSteps = p.RejectedSteps,
            Duration = p.Duration,
        };
}

/// <summary>The result of <see cref="Trainer{TBatch}.Fit"/>: the end-of-epoch reports and why training ended.</summary>
/// <param name="Epochs">One report per epoch that ran.</param>
/// <param name="Outcome">Why training ended.</param>
public sealed record TrainingResult(IReadOnlyList<TrainingProgress> Epochs, TrainingOutcome Outcome);

/// <summary>
/// Trains a model the way people train: epochs of batches, any TorchSharp optimizer and scheduler, progress reports
/// with the function evaluations of every block, flow or adaptive-depth model inside it, a validation loss per epoch,
/// early stopping, a per-iteration callback, and a cancellation token that also stops a long solve at its next step
/// (forward or backward).
/// </summary>
/// <typeparam name="TBatch">What one batch is (e.g. a tuple of input and target tensors).</typeparam>
public sealed class Trainer<TBatch>
{
    readonly Module _model;
    readonly torch.optim.Optimizer _optimizer;
    readonly Func<TBatch, torch.Tensor> _loss;

    /// <summary>Creates the trainer.</summary>
    /// <param name="model">The model being trained (its solving modules are found for the reports).</param>
    /// <param name="optimizer">Any TorchSharp optimizer over the model's parameters.</param>
    /// <param name="loss">The loss of one batch, a 0-dim tensor; its gradients are taken by <see cref="Ode.Backward"/>.</param>
    public Trainer(Module model, torch.optim.Optimizer optimizer, Func<TBatch, torch.Tensor> loss)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        _loss = loss ?? throw new ArgumentNullException(nameof(loss));
    }

    /// <summary>Trains for <paramref name="epochs"/> epochs over <c>batches(epoch)</c>; every iteration runs in a dispose
    /// scope of its own.</summary>
    /// <param name="batches">The batches of an epoch (epochs count from 1).</param>
    /// <param name="epochs">Number of epochs (≥ 1).</param>
    /// <param name="progress">Receives every report (e.g. a <see cref="ConsoleProgressBar"/>).</param>
    /// <param name="validate">A validation loss, computed after each epoch without gradients.</param>
    /// <param name="patience">Stop when the validation loss (else the epoch's mean loss) has not improved for this many
    /// epochs.</param>
    /// <param name="scheduler">A learning-rate scheduler, stepped after each epoch.</param>
    /// <param name="onIteration">Called after each iteration; returning false stops training.</param>
    /// <param name="cancellationToken">Stops training, and any solve in it at its next step
    /// (<see cref="OperationCanceledException"/>).</param>
    /// <param name="checkpointPath">Save a checkpoint (model, optimizer, position) here after every epoch, atomically:
    /// an interrupted save never destroys the previous one.</param>
    /// <param name="resume">When <paramref name="checkpointPath"/> holds a checkpoint, load it and continue after its
    /// epoch.</param>
    /// <param name="tensorBoardDirectory">Write TensorBoard event files to this folder (made when missing), through
    /// TorchSharp's <c>SummaryWriter</c>: at each iteration <c>loss</c>, <c>nfe/forward</c>, <c>nfe/backward</c>,
    /// <c>steps/accepted</c>, <c>steps/rejected</c> and <c>time/iteration_seconds</c>; at each epoch's end
    /// <c>loss/epoch_mean</c> and, with <paramref name="validate"/>, <c>loss/validation</c>. The step is the iteration
    /// (an epoch's values at its last iteration); the values are the reports' (<see cref="TrainingProgress"/>) as
    /// float32. Each event is flushed as it is written, so a run that fails leaves the log complete up to the failure.
    /// View with <c>tensorboard --logdir</c> and the folder.</param>
    /// <param name="world">Train data-parallel over the ranks of this world (<see cref="Distributed.Initialize"/>):
    /// rank 0's parameters are broadcast at the start; <paramref name="batches"/> yields each rank's shard of every
    /// global batch (<see cref="DistributedWorld.Shard"/>); after each backward pass the gradients are averaged over
    /// the ranks (any sensitivity) and the reported loss is the ranks' mean. Progress, <paramref name="onIteration"/>,
    /// TensorBoard and checkpoints run on rank 0 only (its callback's decision reaches every rank); the validation
    /// loss is the ranks' mean. A failure on any rank throws on every rank — that rank its own exception, the others
    /// <see cref="DistributedException"/> naming it — so none is left waiting.</param>
    /// <exception cref="TrainingDivergedException">The loss, a parameter's gradient, or a parameter after the
    /// optimizer's step held NaN or Inf; it names which (the parameter by its name), the epoch and the iteration.</exception>
    /// <exception cref="ArgumentException">An epoch's <paramref name="batches"/> were empty.</exception>
    /// <exception cref="System.IO.IOException">A checkpoint cannot be written to <paramref name="checkpointPath"/>, or
    /// event files to <paramref name="tensorBoardDirectory"/> (both checked before the first epoch; the message names
    /// the path).</exception>
    /// <exception cref="DistributedException">With <paramref name="world"/>: another rank failed (named with its
    /// error), the ranks' batches per epoch differ, or a collective timed out.</exception>
    public TrainingResult Fit(Func<int, IEnumerable<TBatch>> batches, int epochs = 1, IProgress<TrainingProgress>? progress = null,
                              Func<double>? validate = null, int? patience = null,
                              torch.optim.lr_scheduler.LRScheduler? scheduler = null,
                              Func<TrainingProgress, bool>? onIteration = null, CancellationToken cancellationToken = default,
                              string? checkpointPath = null, bool resume = false, string? tensorBoardDirectory = null,
                              DistributedWorld? world = null)
    {
        ArgumentNullException.ThrowIfNull(batches);
        var resumeFrom = resume && checkpointPath is not null && System.IO.File.Exists(checkpointPath)
            ? FSharpOption<Core.Checkpoint.CheckpointState>.Some(Core.Checkpoint.load(checkpointPath, _model, _optimizer))
            : FSharpOption<Core.Checkpoint.CheckpointState>.None;
        var options = new Core.TrainerOptions(
            epochs,
            scheduler is null ? FSharpOption<torch.optim.lr_scheduler.LRScheduler>.None : FSharpOption<torch.optim.lr_scheduler.LRScheduler>.Some(scheduler),
            validate is null ? FSharpOption<FSharpFunc<Unit, double>>.None : FSharpOption<FSharpFunc<Unit, double>>.Some(FuncConvert.FromFunc<Unit, double>(_ => validate())),
            patience is int p ? FSharpOption<int>.Some(p) : FSharpOption<int>.None,
            progress is null ? FSharpOption<IProgress<Core.TrainingProgress>>.None
                             : FSharpOption<IProgress<Core.TrainingProgress>>.Some(new Relay(progress)),
            onIteration is null ? FSharpOption<FSharpFunc<Core.TrainingProgress, bool>>.None
                                : FSharpOption<FSharpFunc<Core.TrainingProgress, bool>>.Some(FuncConvert.FromFunc<Core.TrainingProgress, bool>(r => onIteration(TrainingProgress.From(r)))),
            cancellationToken,
            checkpointPath is null ? FSharpOption<string>.None : FSharpOption<string>.Some(checkpointPath),
            resumeFrom,
            tensorBoardDirectory is null ? FSharpOption<string>.None : FSharpOption<string>.Some(tensorBoardDirectory),
            world is null ? FSharpOption<Core.World>.None : FSharpOption<Core.World>.Some(world.Core));
        var result = Core.Trainer.fit(_model, _optimizer, FuncConvert.FromFunc(_loss),
            FuncConvert.FromFunc<int, IEnumerable<TBatch>>(batches), options);
        return new TrainingResult(result.Epochs.Select(TrainingProgress.From).ToList(), result.Outcome);
    }

    /// <summary>Hands the core's reports to the caller's IProgress as facade records (synchronously, in order).</summary>
    sealed class Relay(IProgress<TrainingProgress> target) : IProgress<Core.TrainingProgress>
    {
        public void Report(Core.TrainingProgress value) => target.Report(TrainingProgress.From(value));
    }
}

/// <summary>A one-line console progress bar for training reports: epoch, iteration, loss, function evaluations,
/// elapsed time; a new line at the end of each epoch.</summary>
public sealed class ConsoleProgressBar : IProgress<TrainingProgress>
{
    readonly System.IO.TextWriter _writer;
    readonly int _iterationsPerEpoch;

    /// <summary>Writes to <paramref name="writer"/> (the console when null).</summary>
    /// <param name="iterationsPerEpoch">For the bar's length; 0 when unknown (no bar, the counts only).</param>
    /// <param name="writer">Where to write.</param>
    public ConsoleProgressBar(int iterationsPerEpoch = 0, System.IO.TextWriter? writer = null)
    {
        _iterationsPerEpoch = iterationsPerEpoch;
        _writer = writer ?? Console.Out;
    }

    /// <inheritdoc />
    public void Report(TrainingProgress value)
    {
        if (value.EndOfEpoch)
        {
            var validation = value.ValidationLoss is double v ? $", validation {v:G4}" : "";
            _writer.WriteLine($"\repoch {value.Epoch}: mean loss {value.Loss:G4}{validation} ({value.Elapsed.TotalSeconds:F1} s)".PadRight(79));
            return;
        }
        var bar = "";
        if (_iterationsPerEpoch > 0)
        {
            var done = (value.Iteration - 1) % _iterationsPerEpoch + 1;
            var filled = 20 * done / _iterationsPerEpoch;
            bar = "[" + new string('#', filled) + new string('.', 20 - filled) + "] ";
        }
        _writer.Write($"\repoch {value.Epoch} {bar}it {value.Iteration} loss {value.Loss:G4} nfe {value.ForwardEvaluations}/{value.BackwardEvaluations}");
    }
}

/// <summary>
/// Checkpoints: a model's parameters, its optimizer's state and the training position in one file, written atomically
/// (a temporary file, flushed, renamed over the old one) and checked by a SHA-256 when loaded; nothing in the file is
/// executed. <see cref="Trainer{TBatch}.Fit"/> writes one per epoch with <c>checkpointPath:</c>.
/// </summary>
public static class Checkpoints
{
    /// <summary>Saves <paramref name="model"/>, <paramref name="optimizer"/> (null: none) and the position.</summary>
    public static void Save(string path, Module model, torch.optim.Optimizer? optimizer = null, int epoch = 0, int iteration = 0,
                            double bestLoss = double.PositiveInfinity) =>
        Core.Checkpoint.save(path, model, optimizer!, new Core.Checkpoint.CheckpointState(epoch, iteration, bestLoss));

    /// <summary>Loads a checkpoint into <paramref name="model"/> and <paramref name="optimizer"/> (null: skip its
    /// state); returns the saved position.</summary>
    /// <exception cref="System.IO.InvalidDataException">The file is truncated, altered or not a checkpoint.</exception>
    public static (int Epoch, int Iteration, double BestLoss) Load(string path, Module model, torch.optim.Optimizer? optimizer = null)
    {
        var state = Core.Checkpoint.load(path, model, optimizer!);
        return (state.Epoch, state.Iteration, state.BestLoss);
    }
}
