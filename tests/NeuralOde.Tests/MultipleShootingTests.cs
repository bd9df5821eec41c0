using System;
using NeuralOde;
using TorchSharp;
using Xunit;

namespace NeuralOde.Tests;

/// <summary>Multiple shooting from C#: the facade's boundary states equal a sequential solve, gradients flow to z0,
/// and bad arguments are named.</summary>
public class MultipleShootingTests
{
    /// <summary>A nonlinear, depth-varying rotation-like field. Its sign vector is made per call: a static tensor
    /// initialised lazily inside a solver's dispose scope would be freed with that scope.</summary>
    private static torch.Tensor Field(double t, torch.Tensor z)
    {
        using var sign = torch.tensor(new[] { 1.0, -1.0 }, dtype: z.dtype, device: z.device);
        return torch.tanh(z.flip(-1) * (1.0 + 0.5 * t)) * sign;
    }

    [Fact]
    public void EveryMethodMatchesTheSequentialSolveAndGradientsReachZ0()
    {
        var times = new[] { 0.0, 0.5, 1.0, 1.5, 2.0 };
        foreach (var method in Enum.GetValues<ShootingMethod>())
        {
            using var z0 = torch.tensor(new[] { 1.0, 0.5 }, dtype: torch.float64).requires_grad_(true);
            using var result = MultipleShooting.Solve(Field, z0, times, method, tolerance: 1e-12);
            Assert.True(result.Converged, $"{method}");
            Assert.Equal(new long[] { 5, 2 }, result.States.shape);
            var state = z0.detach();
            for (var k = 0; k < times.Length - 1; k++)
            {
                using var segment = Ode.Solve(Field, state, new[] { times[k], times[k + 1] }, Solvers.Rk4(), StepSize.Steps(4));
                state = segment.States[1].detach();
                using var difference = (result.States[k + 1] - state).abs().max();
                Assert.True(difference.ToDouble() < 1e-10, $"{method}, boundary {k + 1}: {difference.ToDouble()}");
            }
            using var loss = result.States[^1].sum();
            loss.backward();
            Assert.NotNull(z0.grad);
        }
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        using var z0 = torch.tensor(new[] { 1.0, 0.5 }, dtype: torch.float64);
        Assert.Equal("times", Assert.ThrowsAny<ArgumentException>(() => MultipleShooting.Solve(Field, z0, new[] { 0.0, 1.0, 0.5 })).ParamName);
        Assert.Equal("fineSteps", Assert.ThrowsAny<ArgumentException>(() => MultipleShooting.Solve(Field, z0, new[] { 0.0, 1.0 }, fineSteps: 0)).ParamName);
        using var guess = torch.zeros(3, 2, dtype: torch.float64);
        Assert.Equal("initialGuess", Assert.ThrowsAny<ArgumentException>(() => MultipleShooting.Solve(Field, z0, new[] { 0.0, 1.0 }, initialGuess: guess)).ParamName);
    }
}
