using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>Symbolic fields from C#: the adjoint with the compiled symbolic vector–Jacobian products equals the adjoint
/// with autograd's (same solver, float64), a continuous normalizing flow on the field takes the closed-form exact trace
/// and matches autograd's exact trace, and bad input is refused by name.</summary>
public class SymbolicFieldTests
{
    static SymbolicExpression Mlp()
    {
        var z = Symbolic.Tensor("z");
        return Symbolic.MatMul(Symbolic.Tanh(Symbolic.MatMul(z, Symbolic.Tensor("w1")) + Symbolic.Tensor("b1")), Symbolic.Tensor("w2"));
    }

    static Dictionary<string, torch.Tensor> Weights(ulong seed, int hidden)
    {
        var g = new torch.Generator(seed);
        return new()
        {
            ["w1"] = torch.randn(new long[] { 2, hidden }, dtype: torch.float64, generator: g) * 0.5,
            ["b1"] = torch.randn(new long[] { hidden }, dtype: torch.float64, generator: g) * 0.5,
            ["w2"] = torch.randn(new long[] { hidden, 2 }, dtype: torch.float64, generator: g) * 0.5,
        };
    }

    static double[][] Gradients(OdeSolution solution, torch.Tensor x0, IEnumerable<torch.Tensor> parameters)
    {
        using var loss = solution.Final.square().sum();
        var inputs = new[] { x0 }.Concat(parameters).ToArray();
        var grads = torch.autograd.grad(new[] { loss }, inputs);
        return grads.Select(t => t.detach().data<double>().ToArray()).ToArray();
    }

    [Fact]
    public void AdjointWithSymbolicVjpsEqualsAdjointWithAutograd()
    {
        using var field = SymbolicField.Create(Mlp(), "z", Weights(3, 8));
        using var x0 = torch.randn(new long[] { 5, 2 }, dtype: torch.float64).requires_grad_(true);
        var times = new[] { 0.0, 1.0 };
        var step = StepSize.Adaptive(1e-10, 1e-12);
        using var symbolic = field.Solve(x0, times, stepSize: step, sensitivity: Sensitivities.Adjoint());
        var bySymbolic = Gradients(symbolic, x0, field.Parameters);
        // The same module solved through Ode.Solve: the adjoint then takes autograd's vector–Jacobian products.
        using var viaAutograd = Ode.Solve(field.Module, x0, times, stepSize: step, sensitivity: Sensitivities.Adjoint());
        var byAutograd = Gradients(viaAutograd, x0, field.Parameters);
        for (int k = 0; k < byAutograd.Length; k++)
            for (int i = 0; i < byAutograd[k].Length; i++)
                Assert.Equal(byAutograd[k][i], bySymbolic[k][i], 10);
    }

    [Fact]
    public void FlowTakesTheClosedFormTraceAndAgreesWithAutograd()
    {
        using var field = SymbolicField.Create(Mlp(), "z", Weights(4, 16));
        Assert.Equal("tr(w1 diag(1 - tanh(z @ w1 + b1)^2) w2)", field.JacobianText);
        using var x = torch.randn(new long[] { 32, 2 }, dtype: torch.float64);
        using var symbolicFlow = new ContinuousNormalizingFlow(field.Module, 2, stepSize: StepSize.Adaptive(1e-9, 1e-11));
        // Wrapped in a Sequential, the closed form is hidden and the flow takes d autograd passes.
        using var wrapped = torch.nn.Sequential(field.Module);
        using var autogradFlow = new ContinuousNormalizingFlow(wrapped, 2, stepSize: StepSize.Adaptive(1e-9, 1e-11));
        using var lpSymbolic = symbolicFlow.LogProbability(x);
        using var lpAutograd = autogradFlow.LogProbability(x);
        var a = lpAutograd.detach().data<double>().ToArray();
        var s = lpSymbolic.detach().data<double>().ToArray();
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], s[i], 10);
    }

    [Fact]
    public void BadInputIsRefusedByName()
    {
        var weights = Weights(5, 4);
        weights["unused"] = torch.ones(2, dtype: torch.float64);
        var e = Assert.Throws<ArgumentException>(() => SymbolicField.Create(Mlp(), "z", weights));
        Assert.Contains("'unused'", e.Message);
        e = Assert.Throws<ArgumentException>(() => SymbolicField.Create(Mlp(), "z", new Dictionary<string, torch.Tensor>()));
        Assert.Contains("'w1'", e.Message);
        using var rowsMix = SymbolicField.Create(Symbolic.MatMul(Symbolic.Transpose(Symbolic.Tensor("z")), Symbolic.Tensor("z")), "z",
                                                 new Dictionary<string, torch.Tensor>());
        Assert.Contains("Hutchinson", Assert.Throws<NotSupportedException>(() => rowsMix.JacobianText).Message);
    }
}
