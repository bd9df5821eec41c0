using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>The trainer from C#: progress records, early stopping, cancellation reaching a solve.</summary>
public class TrainerTests
{
    [Fact]
    public void TheTrainerTrainsABlockAndReportsProgress()
    {
        torch.manual_seed(5);
        using var block = new NeuralOdeBlock(Sequential(Linear(2, 16), Tanh(), Linear(16, 2)), solver: Solvers.Rk4(),
            stepSize: StepSize.Steps(4), sensitivity: Sensitivities.Adjoint());
        using var optimizer = torch.optim.Adam(block.parameters(), 0.02);
        var generator = new torch.Generator(6);
        var data = Enumerable.Range(0, 4).Select(_ => torch.randn(new long[] { 16, 2 }, generator: generator)).ToList();
        var reports = new List<TrainingProgress>();
        var trainer = new Trainer<torch.Tensor>(block, optimizer, x => (block.forward(x) - 2 * x).square().mean());
        var result = trainer.Fit(_ => data, epochs: 6, progress: new SynchronousProgress(reports.Add),
                                 validate: () => (block.forward(data[0]) - 2 * data[0]).square().mean().ToDouble());
        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.Equal(6, result.Epochs.Count);
        Assert.True(result.Epochs[^1].ValidationLoss < 0.5 * result.Epochs[0].ValidationLoss, $"{result.Epochs[0].ValidationLoss} -> {result.Epochs[^1].ValidationLoss}");
        Assert.Equal(6 * 4 + 6, reports.Count);
        Assert.All(reports.Where(r => !r.EndOfEpoch), r => Assert.Equal(16, r.ForwardEvaluations));
        Assert.All(reports.Where(r => !r.EndOfEpoch), r => Assert.True(r.BackwardEvaluations > 0));
        var text = new StringWriter();
        new ConsoleProgressBar(4, text).Report(reports[0]);
        Assert.Contains("epoch 1 [#####...............] it 1", text.ToString());
    }

    [Fact]
    public void ACancellationTokenStopsTrainingInsideASolve()
    {
        using var cts = new CancellationTokenSource();
        var evaluations = 0;
        using var field = new CancelAfter(cts, () => ++evaluations > 10);
        using var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(100));
        using var optimizer = torch.optim.SGD(new[] { new TorchSharp.Modules.Parameter(torch.zeros(1)) }, 0.1);
        using var x = torch.ones(2, 1);
        var trainer = new Trainer<torch.Tensor>(block, optimizer, b => block.forward(b).sum());
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Fit(_ => new[] { x }, epochs: 3, cancellationToken: cts.Token));
        Assert.InRange(evaluations, 11, 16);
    }

    [Fact]
    public void FitWritesItsReportsToTensorBoard()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"neuralode-tb-{Guid.NewGuid():N}");
        try
        {
            torch.manual_seed(11);
            using var block = new NeuralOdeBlock(Sequential(Linear(2, 4), Tanh(), Linear(4, 2)), solver: Solvers.Dopri5(),
                stepSize: StepSize.Adaptive(1e-4, 1e-4), sensitivity: Sensitivities.Adjoint());
            using var optimizer = torch.optim.Adam(block.parameters(), 0.01);
            var data = Enumerable.Range(0, 3).Select(_ => torch.randn(8, 2)).ToList();
            var reports = new List<TrainingProgress>();
            var trainer = new Trainer<torch.Tensor>(block, optimizer, x => (block.forward(x) - 2 * x).square().mean());
            trainer.Fit(_ => data, epochs: 2, progress: new SynchronousProgress(reports.Add),
                        validate: () => (block.forward(data[0]) - 2 * data[0]).square().mean().ToDouble(),
                        tensorBoardDirectory: folder);

            var file = Assert.Single(Directory.GetFiles(folder, "events.out.tfevents.*"));
            Assert.Equal("brain.Event:2", EventFiles.Read(file)[0].FileVersion);
            var expected = new List<(string Tag, long Step, float Value)>();
            foreach (var p in reports)
            {
                var values = p.EndOfEpoch
                    ? new List<(string, double)> { ("loss/epoch_mean", p.Loss) }
                    : [("loss", p.Loss), ("nfe/forward", p.ForwardEvaluations), ("nfe/backward", p.BackwardEvaluations),
                       ("steps/accepted", p.AcceptedSteps), ("steps/rejected", p.RejectedSteps),
                       ("time/iteration_seconds", p.Duration.TotalSeconds)];
                if (p.ValidationLoss is double v) values.Add(("loss/validation", v));
                expected.AddRange(values.Select(t => (t.Item1, (long)p.Iteration, (float)t.Item2)));
            }
            Assert.Equal(2 * 3 * 6 + 2 * 2, expected.Count);
            Assert.Equal(expected, EventFiles.Scalars(file));
            Assert.All(reports.Where(r => !r.EndOfEpoch), r => Assert.True(r.AcceptedSteps > 0 && r.Duration > TimeSpan.Zero));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    [Fact]
    public void AnUnwritableTensorBoardFolderIsRefusedBeforeTraining()
    {
        var file = Path.GetTempFileName();
        try
        {
            var under = Path.Combine(file, "runs");
            var calls = 0;
            using var block = new NeuralOdeBlock(Sequential(Linear(2, 4), Tanh(), Linear(4, 2)), solver: Solvers.Rk4(), stepSize: StepSize.Steps(2));
            using var optimizer = torch.optim.SGD(block.parameters(), 0.01);
            var trainer = new Trainer<torch.Tensor>(block, optimizer, x => { calls++; return block.forward(x).square().mean(); });
            var e = Assert.Throws<IOException>(() => trainer.Fit(_ => new[] { torch.ones(2, 2) }, tensorBoardDirectory: under));
            Assert.Contains(under, e.Message);
            Assert.Equal(0, calls);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void TheEventFileReaderUsesTheStandardCrc32C() =>
        Assert.Equal(0xE3069283u, EventFiles.Crc32C("123456789"u8));

    sealed class CancelAfter(CancellationTokenSource cts, Func<bool> due) : Module<torch.Tensor, torch.Tensor>("cancel_after")
    {
        public override torch.Tensor forward(torch.Tensor x)
        {
            if (due()) cts.Cancel();
            return -x;
        }
    }

    /// <summary>Reports on the caller's thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
    sealed class SynchronousProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

/// <summary>Checkpoints from C#: Fit writes one per epoch and resumes from it.</summary>
public class CheckpointTests
{
    [Fact]
    public void FitSavesACheckpointEachEpochAndResumesFromIt()
    {
        var path = Path.Combine(Path.GetTempPath(), $"neuralode-{Guid.NewGuid():N}.ckpt");
        try
        {
            torch.manual_seed(9);
            var data = new[] { torch.randn(8, 2) };
            TrainingResult Run(int epochs)
            {
                using var block = new NeuralOdeBlock(Sequential(Linear(2, 8), Tanh(), Linear(8, 2)), solver: Solvers.Rk4(), stepSize: StepSize.Steps(4));
                using var optimizer = torch.optim.Adam(block.parameters(), 0.01);
                var trainer = new Trainer<torch.Tensor>(block, optimizer, x => (block.forward(x) - x).square().mean());
                return trainer.Fit(_ => data, epochs: epochs, checkpointPath: path, resume: true);
            }
            Assert.Equal(2, Run(2).Epochs.Count);
            var resumed = Run(3);
            Assert.Single(resumed.Epochs);
            Assert.Equal(3, resumed.Epochs[0].Epoch);
            using var probe = new NeuralOdeBlock(Sequential(Linear(2, 8), Tanh(), Linear(8, 2)));
            Assert.Equal(3, Checkpoints.Load(path, probe).Epoch);
        }
        finally { File.Delete(path); }
    }
}

/// <summary>PyTorch weights from C#.</summary>
public class PyTorchWeightsTests
{
    [Fact]
    public void APyTorchFieldLoadsIntoABlockAndSavesBack()
    {
        var fixture = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "fixtures", "mlp-field.safetensors");
        using var block = new NeuralOdeBlock(Sequential(Linear(2, 4), Tanh(), Linear(4, 2)));
        var loaded = PyTorchWeights.LoadSafetensors(block, fixture, new Dictionary<string, string> { ["vf."] = "block.vector_field." });
        Assert.Equal(4, loaded.Count);
        // Each tensor once, under the registered names (TorchSharp's reflection would add "vectorField.*" copies).
        Assert.Equal(new[] { "block.vector_field.0.bias", "block.vector_field.0.weight", "block.vector_field.2.bias", "block.vector_field.2.weight" },
                     block.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
        var path = Path.Combine(Path.GetTempPath(), $"neuralode-{Guid.NewGuid():N}.safetensors");
        try
        {
            PyTorchWeights.SaveSafetensors(block, path, new Dictionary<string, string> { ["block.vector_field."] = "vf." });
            using var again = new NeuralOdeBlock(Sequential(Linear(2, 4), Tanh(), Linear(4, 2)));
            PyTorchWeights.LoadSafetensors(again, path, new Dictionary<string, string> { ["vf."] = "block.vector_field." });
            Assert.Equal(block.parameters().First().data<float>().ToArray(), again.parameters().First().data<float>().ToArray());
        }
        finally { File.Delete(path); }
        Assert.Throws<NotSupportedException>(() => PyTorchWeights.LoadSafetensors(block, "weights.pt"));
    }
}
