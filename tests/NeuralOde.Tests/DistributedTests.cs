using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>Scale-out from C# in one process (the mpirun -np 2 runs are tests/Mpi/MpiRuns.fsx): the world, shards,
/// ensembles, and the trainer with a world.</summary>
public class DistributedTests
{
    [Fact]
    public void WithoutMpirunTheWorldIsOneProcess()
    {
        Assert.False(Distributed.Launched);
        using var world = Distributed.Local();
        Assert.Equal((0, 1, true, false), (world.Rank, world.Size, world.IsRoot, world.UsesMpi));
        using var batch = torch.arange(12, dtype: torch.float64).reshape(6, 2);
        Assert.Equal(6, world.Shard(batch).shape[0]);
        Assert.Equal((0L, 6L), world.ShardRange(6));
        var e = Assert.Throws<DistributedException>(() => Distributed.Initialize(requireMpi: true));
        Assert.Contains("not started by mpirun", e.Message);
    }

    [Fact]
    public void AnEnsembleReturnsItsResultsInMemberOrder()
    {
        using var world = Distributed.Local();
        var results = Ensemble.Map(world, 4, i =>
        {
            using var x0 = torch.tensor(new[] { 1.0 }, dtype: torch.float64);
            using var solution = Ode.Solve((t, x) => -(i + 1) * x, x0, new[] { 0.0, 1.0 }, Solvers.Dopri5(),
                                           StepSize.Adaptive(1e-10, 1e-12));
            return solution.Final.clone();
        });
        Assert.Equal(4, results.Length);
        for (var i = 0; i < 4; i++) Assert.Equal(Math.Exp(-(i + 1)), results[i].ToDouble(), 8);
        Assert.Equal((0, 4), Ensemble.Range(world, 4));
    }

    [Fact]
    public void TheTrainerWithAOneProcessWorldTrainsAsWithout()
    {
        double[] Train(DistributedWorld? world)
        {
            torch.manual_seed(8);
            using var block = new NeuralOdeBlock(Sequential(Linear(2, 8), Tanh(), Linear(8, 2)), solver: Solvers.Rk4(),
                stepSize: StepSize.Steps(4), sensitivity: Sensitivities.Adjoint());
            using var optimizer = torch.optim.Adam(block.parameters(), 0.02);
            var generator = new torch.Generator(9);
            var data = Enumerable.Range(0, 3).Select(_ => torch.randn(new long[] { 8, 2 }, generator: generator)).ToList();
            var trainer = new Trainer<torch.Tensor>(block, optimizer, x => (block.forward(x) - 2 * x).square().mean());
            trainer.Fit(_ => data.Select(x => world is null ? x : world.Shard(x)), epochs: 2, world: world);
            return block.parameters().SelectMany(p => p.data<float>().ToArray()).Select(v => (double)v).ToArray();
        }
        using var world = Distributed.Local();
        Assert.Equal(Train(null), Train(world));
    }
}
