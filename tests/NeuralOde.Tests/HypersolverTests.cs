using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>Hypersolvers from C#: a zero correction is its base method, training lowers the residual error and beats
/// the base method at the same step count, and bad input is refused by name.</summary>
public class HypersolverTests
{
    static Func<double, torch.Tensor, torch.Tensor> Field()
    {
        torch.manual_seed(3);
        var mlp = Sequential(Linear(2, 16), Tanh(), Linear(16, 2));
        mlp.to(torch.float64);
        return (t, z) => mlp.forward(z);
    }

    [Fact]
    public void TrainingBeatsTheBaseMethodAtTheSameSteps()
    {
        var f = Field();
        torch.manual_seed(4);
        var correction = Sequential(Linear(4, 32), Tanh(), Linear(32, 2));
        correction.to(torch.float64);
        var hyper = new Hypersolver(Solvers.Euler(), correction);
        using var training = torch.randn(512, 2, dtype: torch.float64);
        var losses = hyper.Train(f, training, 0.0, 1.0, steps: 8, iterations: 300);
        Assert.True(losses[^1] < 0.2 * losses[0], $"residual error {losses[0]} → {losses[^1]}");
        using var z0 = torch.randn(128, 2, dtype: torch.float64);
        using var noGrad = torch.no_grad();
        using var reference = Ode.Solve(f, z0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-10, 1e-10));
        using var states = hyper.Solve(f, z0, 0.0, 1.0, 8);
        using var euler = Ode.Solve(f, z0, new[] { 0.0, 1.0 }, Solvers.Euler(), StepSize.Steps(8));
        double Error(torch.Tensor x) { using var d = (x - reference.Final).abs().max(); return d.ToDouble(); }
        Assert.True(Error(states[8]) < 0.3 * Error(euler.Final), $"hyper-Euler {Error(states[8])}, Euler {Error(euler.Final)}");
    }

    [Fact]
    public void BadInputIsNamed()
    {
        var hyper = new Hypersolver(Solvers.Euler(), Sequential(Linear(4, 2)));
        using var flat = torch.zeros(2);
        Assert.Equal("z", Assert.Throws<ArgumentException>(() => hyper.Solve(Field(), flat, 0, 1, 4)).ParamName);
        Assert.Throws<ArgumentNullException>(() => new Hypersolver(null!, Sequential(Linear(4, 2))));
    }
}
