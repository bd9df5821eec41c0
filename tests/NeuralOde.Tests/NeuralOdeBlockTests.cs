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

    [Fact]
    public void FusedSolverGivesTheGenericSolversOutputAndGradients()
    {
        torch.manual_seed(3);
        using var field = Sequential(Linear(2, 32), Tanh(), Linear(32, 32), Tanh(), Linear(32, 2));
        field.to(torch.float64);
        using var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(20));
        Assert.Equal(FieldBackend.Auto, block.Backend);
        using var x = torch.randn(new long[] { 64, 2 }, dtype: torch.float64);

        var fused = SolveAndDifferentiate(block, x, fused: true);
        var generic = SolveAndDifferentiate(block, x, fused: false);
        AssertAgree(fused, generic);
        Assert.Equal(new SolveStatistics(80, 20, 0), block.LastStatistics);   // the module's run (the last one)
        Assert.Equal("module", block.LastStatistics.Backend);
    }

    [Fact]
    public void AdaptiveStepsWithAutogradRunTheModuleAndSayWhy()
    {
        using var field = Sequential(Linear(2, 8), Tanh(), Linear(8, 2));
        using var block = new NeuralOdeBlock(field, solver: Solvers.Dopri5(), stepSize: StepSize.Adaptive(1e-5, 1e-5));
        using var x = torch.randn(4, 2);
        using var y = block.forward(x);
        Assert.StartsWith("module: autograd through adaptive steps", block.LastStatistics.Backend);
        using (torch.no_grad())
        {
            using var inference = block.forward(x);
            Assert.Equal("compiled MLP", block.LastStatistics.Backend);   // no gradient: compiled
        }
    }

    [Fact]
    public void OdeSolveOnAModuleRunsCompiledLikeABlock()
    {
        torch.manual_seed(6);
        using var field = Sequential(Linear(2, 16), Tanh(), Linear(16, 2));
        field.to(torch.float64);
        using var x = torch.randn(new long[] { 8, 2 }, dtype: torch.float64);
        using var compiled = Ode.Solve(field, x, new[] { 0.0, 0.5, 1.0 }, Solvers.Rk4(), StepSize.Steps(10));
        Assert.Equal("compiled MLP", compiled.Statistics.Backend);
        using var module = Ode.Solve(field, x, new[] { 0.0, 0.5, 1.0 }, Solvers.Rk4(), StepSize.Steps(10), backend: FieldBackend.Module);
        Assert.Equal("module", module.Statistics.Backend);
        var a = compiled.States.data<double>().ToArray();
        var b = module.States.data<double>().ToArray();
        for (var i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 1e-12);
        Assert.Equal(module.Statistics, compiled.Statistics);   // the same steps and evaluations (equality: the counts)
    }

    [Fact]
    public void AdjointBlocksRunTheFusedAdjointWithTheGenericAdjointsGradients()
    {
        torch.manual_seed(5);
        using var field = Sequential(Linear(2, 32), Tanh(), Linear(32, 32), Tanh(), Linear(32, 2));
        field.to(torch.float64);
        using var block = new NeuralOdeBlock(field, solver: Solvers.Dopri5(), stepSize: StepSize.Adaptive(1e-7, 1e-7),
                                             sensitivity: Sensitivities.Adjoint(seminorm: true));
        using var x = torch.randn(new long[] { 64, 2 }, dtype: torch.float64);

        var fused = SolveAndDifferentiate(block, x, fused: true);
        var fusedBackward = block.LastBackwardStatistics;
        var generic = SolveAndDifferentiate(block, x, fused: false);
        AssertAgree(fused, generic, 1e-9, 1e-9);   // the same steps; rounding differs in the error norm's sums
        Assert.Equal(block.LastBackwardStatistics.FunctionEvaluations, fusedBackward.FunctionEvaluations);
    }

    [Fact]
    public void GalerkinFieldsRunFusedWithTheGenericSolversGradients()
    {
        torch.manual_seed(4);
        using var galerkin = new GalerkinLinear(2, 16, Bases.Fourier(3), torch.float64);
        using (torch.no_grad()) galerkin.Coefficients.normal_(0.0, 0.3);
        using var field = Sequential(galerkin, Tanh(), Linear(16, 2, dtype: torch.float64));
        using var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(10));
        using var x = torch.randn(new long[] { 32, 2 }, dtype: torch.float64);

        var fused = SolveAndDifferentiate(block, x, fused: true);
        var generic = SolveAndDifferentiate(block, x, fused: false);
        AssertAgree(fused, generic);   // the Galerkin coefficients' gradient and the Linear layer's
    }

    /// <summary>The block's output at x and the gradients of Σ y² for every parameter, by the fused or the generic solver.</summary>
    static (double[] Output, double[][] Gradients) SolveAndDifferentiate(NeuralOdeBlock block, torch.Tensor x, bool fused)
    {
        block.Backend = fused ? FieldBackend.Auto : FieldBackend.Module;
        block.zero_grad();
        using var y = block.forward(x);
        Assert.Equal(fused, block.LastStatistics.Backend.StartsWith("compiled"));
        using var loss = (y * y).sum();
        loss.backward();
        return (y.detach().data<double>().ToArray(),
                block.parameters().Select(p => p.grad!.data<double>().ToArray()).ToArray());
    }

    /// <summary>Outputs equal to `output` (1e-12 by default) and every gradient to `gradient` (1e-10).</summary>
    static void AssertAgree((double[] Output, double[][] Gradients) fused, (double[] Output, double[][] Gradients) generic,
                            double output = 1e-12, double gradient = 1e-10)
    {
        for (var i = 0; i < fused.Output.Length; i++)
            Assert.Equal(generic.Output[i], fused.Output[i], output);
        Assert.Equal(generic.Gradients.Length, fused.Gradients.Length);
        for (var p = 0; p < fused.Gradients.Length; p++)
            for (var i = 0; i < fused.Gradients[p].Length; i++)
                Assert.Equal(generic.Gradients[p][i], fused.Gradients[p][i], gradient);
    }
}
