using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

public class SensitivityTests
{
    /// <summary>x' = a x, L = c x(t1) + q ∫ x² dt; the closed forms are derived in
    /// paper-appendix/derivations/linear-quadratic-adjoint.fsx.</summary>
    [Theory]
    [InlineData("adjoint")]
    [InlineData("interpolated")]
    public void AdjointGradientsMatchTheHandDerivation(string method)
    {
        const double a0 = -0.7, x00 = 1.3, c = 0.5, q = 2.0, t0 = 0.2, t1 = 1.7;
        using var a = torch.tensor(new[] { a0 }, requires_grad: true);
        using var x0 = torch.tensor(new[] { x00 }, requires_grad: true);
        using var times = torch.tensor(new[] { t0, t1 }, requires_grad: true);
        var sensitivity = method == "adjoint" ? Sensitivities.Adjoint(seminorm: true) : Sensitivities.InterpolatedAdjoint();
        using var solution = Ode.Solve((t, x) => a * x, x0, null, Solvers.Dopri5(), StepSize.Adaptive(1e-10, 1e-12),
            sensitivity, parameters: new[] { a }, integralLoss: (t, x) => x.square().sum() * q, timeTensor: times);
        using var loss = solution.Final.sum() * c + solution.Integral!;
        loss.backward();

        double tau = t1 - t0, e1 = Math.Exp(a0 * tau), e2 = Math.Exp(2 * a0 * tau);
        Assert.Equal(c * e1 + q * x00 * (e2 - 1) / a0, x0.grad!.ToDouble(), 8);
        Assert.Equal(c * x00 * tau * e1 + q * x00 * x00 * (tau * e2 / a0 - (e2 - 1) / (2 * a0 * a0)), a.grad!.ToDouble(), 8);
        var dt1 = c * a0 * x00 * e1 + q * x00 * x00 * e2;
        Assert.Equal(-dt1, times.grad![0].ToDouble(), 8);
        Assert.Equal(dt1, times.grad![1].ToDouble(), 8);
        Assert.True(solution.BackwardStatistics.FunctionEvaluations > 0);
        Assert.Equal(1, solution.BackwardStatistics.BackwardPasses);
    }

    /// <summary>A backward solve that meets Inf: loss.backward() raises (it used to end the process) and
    /// Ode.Backward raises the solve's own exception.</summary>
    [Fact]
    public void AFailedBackwardSolveRaises()
    {
        using var x0 = torch.ones(new long[] { 3, 2 }, dtype: torch.float64, requires_grad: true);
        using var one = torch.ones(new long[] { 3, 2 }, dtype: torch.float64);
        // x stays at 1, where sqrt|x - 1| has an infinite derivative: the forward solve is fine, the adjoint is not.
        torch.Tensor Field(double t, torch.Tensor x) => (x - one).abs().sqrt();
        void Attempt(Action<torch.Tensor> backward)
        {
            using var solution = Ode.Solve(Field, x0, new[] { 0.0, 1.0 }, sensitivity: Sensitivities.Adjoint(),
                                           parameters: Array.Empty<torch.Tensor>());
            using var loss = solution.Final.sum();
            backward(loss);
        }
        var plain = Assert.Throws<System.Runtime.InteropServices.ExternalException>(() => Attempt(l => l.backward()));
        Assert.Contains("invalid gradient", plain.Message);
        var e = Assert.Throws<OdeSolveException>(() => Attempt(Ode.Backward));
        Assert.Equal(OdeFailure.NonFiniteValue, e.Failure);
    }

    [Fact]
    public void NeuralOdeBlockWithAdjointTrainsLikeAnyModule()
    {
        using var field = Sequential(Linear(2, 16), Tanh(), Linear(16, 2));
        using var block = new NeuralOdeBlock(field, solver: Solvers.Dopri5(), stepSize: StepSize.Adaptive(1e-5, 1e-5),
                                             sensitivity: Sensitivities.Adjoint());
        var generator = new torch.Generator(7);
        using var x = torch.randn(new long[] { 32, 2 }, generator: generator);
        using var target = x * 2.0;
        var (first, last) = Training.Fit(block, x, target, 40);
        Assert.True(last < 0.7 * first, $"loss {first} -> {last}");
        Assert.True(block.LastBackwardStatistics.FunctionEvaluations > 0);
    }
}

/// <summary>Adjoints from C#: the module overload finds the parameters; a Func field without them is refused.</summary>
public class AdjointParameterTests
{
    [Fact]
    public void AnAdjointWithAFuncFieldAndNoParametersIsRefusedNamingParameters()
    {
        using var w = torch.ones(2, 2, dtype: torch.float64, requires_grad: true);
        using var x0 = torch.ones(1, 2, dtype: torch.float64);
        var e = Assert.Throws<ArgumentNullException>(() => Ode.Solve((t, x) => x.mm(w), x0, new[] { 0.0, 1.0 },
            sensitivity: Sensitivities.Adjoint()));
        Assert.Equal("parameters", e.ParamName);
    }

    [Fact]
    public void TheModuleOverloadGivesTheAdjointItsParameters()
    {
        torch.manual_seed(3);
        using var field = Sequential(Linear(2, 4, dtype: torch.float64), Tanh(), Linear(4, 2, dtype: torch.float64));
        using var x0 = torch.tensor(new[] { 0.5, -1.0 }).reshape(1, 2);
        double[] Gradient(Sensitivity sensitivity)
        {
            field.zero_grad();
            using var solution = Ode.Solve(field, x0, new[] { 0.0, 1.0 }, stepSize: StepSize.Adaptive(1e-10, 1e-12), sensitivity: sensitivity);
            using var loss = solution.Final.square().sum();
            Ode.Backward(loss);
            return field.parameters().First().grad!.data<double>().ToArray();
        }
        var autograd = Gradient(Sensitivities.Autograd());
        var adjoint = Gradient(Sensitivities.Adjoint());
        for (var i = 0; i < autograd.Length; i++) Assert.Equal(autograd[i], adjoint[i], 8);
        Assert.Contains(adjoint, g => Math.Abs(g) > 1e-4);
    }
}
