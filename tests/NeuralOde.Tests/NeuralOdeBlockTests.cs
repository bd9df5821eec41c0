using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

public class NeuralOdeBlockTests
{
    [Fact]
    public void GradientsReachTheVectorFieldAndAnOptimizerLowersTheLoss()
    {
        torch.manual_seed(0);
        using var field = Sequential(Linear(2, 16), Tanh(), Linear(16, 2));
        using var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(4));
        Assert.Equal(4, block.parameters().Count());
        using var x = torch.randn(32, 2);
        using var target = x * 2.0;
        var (first, last) = Training.Fit(block, x, target, 60);
        Assert.True(last < 0.5 * first, $"loss {first} -> {last}");
        Assert.Equal(new SolveStatistics(16, 4, 0), block.LastStatistics);
    }

    [Fact]
    public void TrajectoryReturnsEveryOutputTime()
    {
        using var field = Linear(3, 3);
        using var block = new NeuralOdeBlock(field);
        using var x = torch.zeros(5, 3);
        using var trajectory = block.Trajectory(x, new[] { 0.0, 0.25, 0.5, 1.0 });
        Assert.Equal(new long[] { 4, 5, 3 }, trajectory.States.shape);
    }
}
