using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>Hamiltonian and Lagrangian fields through the C# facade: exact fields, solves, the adjoint, errors.</summary>
public class PhysicsFieldTests
{
    /// <summary>H = (q² + p²)/2, or L = (q̇² − q²)/2, for n = 1.</summary>
    sealed class Spring(bool lagrangian) : Module<torch.Tensor, torch.Tensor>("spring")
    {
        public override torch.Tensor forward(torch.Tensor x)
        {
            var q = x[.., 0];
            var v = x[.., 1];
            return lagrangian ? (v.square() - q.square()) * 0.5 : (v.square() + q.square()) * 0.5;
        }
    }

    static double[] Values(torch.Tensor t) => t.detach().contiguous().data<double>().ToArray();

    static Module<torch.Tensor, torch.Tensor> Mlp(long input, long output) =>
        Sequential(Linear(input, 12, dtype: torch.float64), Tanh(), Linear(12, output, dtype: torch.float64));

    [Fact]
    public void TheSpringHamiltonianGivesTheAnalyticFieldAndEnergy()
    {
        using var field = new HamiltonianField(1, new Spring(lagrangian: false));
        using var x = torch.tensor(new[] { 1.0, 2.0, -0.5, 0.3 }, dtype: torch.float64).reshape(2, 2);
        using var f = field.forward(x);
        Assert.Equal(new[] { 2.0, -1.0, 0.3, 0.5 }, Values(f).Select(v => Math.Round(v, 14)));
        using var energy = field.Energy(x);
        Assert.Equal(new[] { 2.5, 0.17 }, Values(energy).Select(v => Math.Round(v, 14)));
        Assert.Equal(1, field.Coordinates);
    }

    [Fact]
    public void AHamiltonianFieldSolvesTheOscillatorAndKeepsItsEnergy()
    {
        using var field = new HamiltonianField(1, new Spring(lagrangian: false));
        using var x0 = torch.tensor(new[] { 1.0, 0.0 }, dtype: torch.float64).reshape(1, 2);
        using var solution = Ode.Solve(field, x0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-10, 1e-12));
        var end = Values(solution.Final);
        Assert.Equal(Math.Cos(1.0), end[0], 8);
        Assert.Equal(-Math.Sin(1.0), end[1], 8);
    }

    [Theory]
    [InlineData("adjoint")]
    [InlineData("interpolated")]
    public void AdjointGradientsThroughALearnedHamiltonianEqualAutograd(string method)
    {
        torch.manual_seed(3);
        using var field = new HamiltonianField(1, Mlp(2, 1));
        using var x0 = torch.randn(new long[] { 4, 2 }, dtype: torch.float64);
        double[] Gradients(Sensitivity sensitivity)
        {
            // The block is not disposed here: disposing it disposes the field, which the next call reuses.
            var block = new NeuralOdeBlock(field, solver: Solvers.Dopri5(), stepSize: StepSize.Adaptive(1e-10, 1e-12),
                                           sensitivity: sensitivity);
            foreach (var p in field.parameters()) p.grad = null;
            using var x = x0.clone().requires_grad_(true);
            using var loss = block.forward(x).square().sum();
            Ode.Backward(loss);
            return Values(x.grad!).Concat(field.parameters().SelectMany(p => p.grad is null ? new double[p.numel()] : Values(p.grad))).ToArray();
        }
        var autograd = Gradients(Sensitivities.Autograd());
        var adjoint = Gradients(method == "adjoint" ? Sensitivities.Adjoint() : Sensitivities.InterpolatedAdjoint());
        for (var i = 0; i < autograd.Length; i++) Assert.Equal(autograd[i], adjoint[i], 7);
        Assert.Contains(autograd, g => Math.Abs(g) > 1e-3);
    }

    [Fact]
    public void TheSpringLagrangianGivesMinusQAndItsEnergy()
    {
        using var field = new LagrangianField(1, new Spring(lagrangian: true));
        using var x = torch.tensor(new[] { 1.0, 2.0, -0.5, 0.3 }, dtype: torch.float64).reshape(2, 2);
        using var f = field.forward(x);
        Assert.Equal(new[] { 2.0, -1.0, 0.3, 0.5 }, Values(f).Select(v => Math.Round(v, 12)));
        using var energy = field.Energy(x);
        Assert.Equal(new[] { 2.5, 0.17 }, Values(energy).Select(v => Math.Round(v, 12)));
        using var block = new NeuralOdeBlock(field, stepSize: StepSize.Adaptive(1e-10, 1e-12));
        using var z = block.forward(x);
        Assert.Equal(Math.Cos(1.0) + 2 * Math.Sin(1.0), Values(z)[0], 8);   // q(t) = cos t + 2 sin t
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        Assert.Equal("coordinates", Assert.Throws<ArgumentOutOfRangeException>(() => new HamiltonianField(0, Mlp(2, 1))).ParamName);
        Assert.Throws<ArgumentNullException>(() => new LagrangianField(1, null!));
        Assert.Equal("ridge", Assert.Throws<ArgumentOutOfRangeException>(() => new LagrangianField(1, Mlp(2, 1), ridge: -1)).ParamName);
        using var field = new HamiltonianField(1, Mlp(2, 2));
        using var x = torch.zeros(3, 2, dtype: torch.float64);
        Assert.Equal("hamiltonian", Assert.Throws<ArgumentException>(() => field.forward(x)).ParamName);
        using var wide = torch.zeros(3, 3, dtype: torch.float64);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => field.forward(wide)).ParamName);
        // L linear in q̇: ∂²L/∂q̇² = 0.
        using var degenerate = new LagrangianField(1, Linear(2, 1, dtype: torch.float64));
        Assert.Equal("lagrangian", Assert.Throws<ArgumentException>(() => degenerate.forward(x)).ParamName);
    }
}
