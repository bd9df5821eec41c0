using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>torchdyn's Galerkin features from C#: radial bases, a basis of one's own in a trained Galerkin layer, and
/// the trainable dilation and shift of the depth, whose gradients the adjoint and Theorem 1 (by the chain rule) give
/// as autograd does.</summary>
public class GalerkinBasisTests
{
    /// <summary>ψ = [1, s, s²] on [0, 1], written by hand; its formulas hold everywhere, so it may extrapolate.</summary>
    static Basis Quadratic(bool extrapolates = true) =>
        new("quadratic", 3, 1.0, s => new[] { 1.0, s, s * s }, s => new[] { 0.0, 1.0, 2 * s },
            s => new[] { s, s * s / 2, s * s * s / 3 }, extrapolates);

    [Fact]
    public void RadialBasesMatchTorchdynsFormulas()
    {
        // torchdyn's defaults (centre 0, scale 2), 3 terms: a = linspace(0, 3, 3)/2 = [0, 0.75, 1.5]; at s = 0.4:
        // Gaussian exp(−(a s)²), multiquadric 1 + √(1 + (a s)²), vanilla a|s|.
        var expected = new Dictionary<Basis, double[]>
        {
            [Bases.GaussianRbf(3)] = new[] { 1.0, 0.9139311852712282, 0.697676326071031 },
            [Bases.MultiquadricRbf(3)] = new[] { 2.0, 2.044030650891055, 2.16619037896906 },
            [Bases.VanillaRbf(3)] = new[] { 0.0, 0.30000000000000004, 0.6000000000000001 },
        };
        foreach (var (basis, values) in expected)
        {
            var got = basis.Values(0.4);
            for (var j = 0; j < 3; j++) Assert.True(Math.Abs(got[j] - values[j]) < 1e-12, $"{basis}: ψ_{j}(0.4) = {got[j]}, expected {values[j]}");
            Assert.True(basis.Extrapolates);
        }
        Assert.Equal("gaussianrbf", Bases.GaussianRbf(4, 2.0, centre: 0.3, scale: 1.5).Name);
        // Centre 0.3, scale 1.5, 4 terms on [0, 2] at s = 0.8: exp(−(a (s − c))²), a = linspace(0, 4, 4)/1.5.
        Assert.True(Math.Abs(Bases.GaussianRbf(4, 2.0, centre: 0.3, scale: 1.5).Values(0.8)[1] - 0.8207548082982681) < 1e-12);
    }

    [Fact]
    public void ACustomBasisInAGalerkinLayerWithDilationAndShiftTrainsOneStep()
    {
        torch.manual_seed(3);
        using var galerkin = new GalerkinLinear(2, 2, Quadratic(), torch.ScalarType.Float64, trainDilation: true, trainShift: true);
        using (torch.no_grad()) galerkin.Coefficients.normal_(0, 0.5);
        Assert.NotNull(galerkin.Dilation);
        Assert.NotNull(galerkin.Shift);
        var tight = StepSize.Adaptive(1e-10, 1e-12);
        using var block = new NeuralOdeBlock(Sequential(galerkin, Tanh()), solver: Solvers.Dopri5(), stepSize: tight,
                                             sensitivity: Sensitivities.Adjoint());
        using var x = torch.randn(4, 2, dtype: torch.ScalarType.Float64);
        Assert.Equal(3, block.parameters().Count());   // α, d and h

        double LossAndGradient()
        {
            block.zero_grad();
            using var z = block.forward(x);
            using var loss = z.square().sum();
            Ode.Backward(loss);
            return loss.item<double>();
        }

        var before = LossAndGradient();
        var adjoint = new[] { galerkin.Dilation!.grad!.item<double>(), galerkin.Shift!.grad!.item<double>() };
        Assert.All(adjoint, g => Assert.True(Math.Abs(g) > 1e-6, "d and h get gradients"));

        // The same field with explicit depth, by autograd; and by the chain rule on Theorem 1's functional gradient.
        torch.Tensor Field(double s, torch.Tensor v) => galerkin.forward(v, s).tanh();
        block.zero_grad();
        using (var solution = Ode.Solve(Field, x, new[] { 0.0, 1.0 }, Solvers.Dopri5(), tight))
        using (var loss = solution.Final.square().sum()) loss.backward();
        var autograd = new[] { galerkin.Dilation.grad!.item<double>(), galerkin.Shift.grad!.item<double>() };
        using var final = Ode.Solve(Field, x, new[] { 0.0, 1.0 }, Solvers.Dopri5(), tight).Final.detach();
        using var chain = DepthGradients.DilationShift(galerkin.Basis, galerkin.Coefficients, galerkin.Dilation.item<double>(),
            galerkin.Shift.item<double>(), Field, () => galerkin.LastWeights, x, final * 2.0, 1e-9, Solvers.Dopri5(), tight);
        var theorem1 = chain.data<double>().ToArray();
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(autograd[i], adjoint[i], 6);
            Assert.Equal(autograd[i], theorem1[i], 6);
        }

        // LossAndGradient left the adjoint's gradients; one step of plain gradient descent lowers the loss.
        LossAndGradient();
        using var optimizer = torch.optim.SGD(block.parameters(), 0.01);
        optimizer.step();
        Assert.NotEqual(1.0, galerkin.Dilation.item<double>());
        Assert.NotEqual(0.0, galerkin.Shift.item<double>());
        Assert.True(LossAndGradient() < before, "one step lowers the loss");
    }

    [Fact]
    public void ABadCustomBasisIsRefusedByName()
    {
        var lopsided = new Basis("lopsided", 3, 1.0, s => new[] { 1.0, s }, s => new[] { 0.0, 1.0, 0.0 }, s => new[] { s, 0.0, 0.0 });
        using var layer = new GalerkinLinear(1, 1, lopsided, torch.ScalarType.Float64);
        using var x = torch.ones(1, 1, dtype: torch.ScalarType.Float64);
        var e = Assert.Throws<ArgumentException>(() => layer.forward(x, 0.5));
        Assert.Equal("values", e.ParamName);
        Assert.Contains("lopsided", e.Message);
        Assert.Contains("returned 2 numbers; it must return 3", e.Message);

        Assert.Equal("terms", Assert.Throws<ArgumentOutOfRangeException>(() =>
            new Basis("b", 0, 1.0, s => new[] { s }, s => new[] { s }, s => new[] { s })).ParamName);
        Assert.Equal("domain", Assert.Throws<ArgumentOutOfRangeException>(() =>
            new Basis("b", 1, double.NaN, s => new[] { s }, s => new[] { s }, s => new[] { s })).ParamName);
        Assert.Equal("integrals", Assert.Throws<ArgumentNullException>(() =>
            new Basis("b", 1, 1.0, s => new[] { s }, s => new[] { s }, null!)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() =>
            new Basis("", 1, 1.0, s => new[] { s }, s => new[] { s }, s => new[] { s })).ParamName);
    }

    [Fact]
    public void ACustomBasisThatDoesNotExtrapolateRefusesTransformedDepthsOutsideItsDomain()
    {
        using var layer = new GalerkinLinear(1, 1, Quadratic(extrapolates: false), torch.ScalarType.Float64, trainShift: true);
        Assert.Null(layer.Dilation);
        using (torch.no_grad()) layer.Shift!.fill_(0.5);
        using var x = torch.ones(1, 1, dtype: torch.ScalarType.Float64);
        using var inside = layer.forward(x, 0.4);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => layer.forward(x, 0.6));
        Assert.Contains("does not extrapolate", e.Message);
    }
}
