using TorchSharp;

namespace NeuralOde.Tests;

public class DepthGradientTests
{
    [Fact]
    public void BasesHaveClosedFormIntegrals()
    {
        var legendre = Bases.Legendre(3);
        Assert.Equal(new[] { 1.0, 0.0, 0.0 }, legendre.Integrals(1.0).Select(v => Math.Round(v, 12)));
        Assert.Equal(5, Bases.Fourier(2).Terms);
        Assert.Equal("chebyshev", Bases.Chebyshev(4, 2.0).Name);
    }

    /// <summary>A Galerkin Neural ODE from C#: the adjoint's dℓ/dα (Corollary 1) equals autograd's and the Theorem 1
    /// gradient projected by quadrature.</summary>
    [Fact]
    public void GalerkinGradientsAgreeAcrossMethods()
    {
        var basis = Bases.Fourier(1);
        using var layer = new GalerkinLinear(2, 2, basis, torch.ScalarType.Float64);
        var generator = new torch.Generator(3);
        using (torch.no_grad()) layer.Coefficients.copy_(torch.randn(layer.Coefficients.shape, dtype: torch.float64, generator: generator) * 0.5);
        using var x0 = torch.randn(new long[] { 3, 2 }, dtype: torch.float64, generator: generator);
        torch.Tensor Field(double s, torch.Tensor x) => layer.forward(x, s).tanh();
        var tight = StepSize.Adaptive(1e-10, 1e-12);

        double[] GradientBy(Sensitivity sensitivity)
        {
            layer.Coefficients.grad?.zero_();
            using var solution = Ode.Solve(Field, x0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), tight, sensitivity,
                                           parameters: new[] { (torch.Tensor)layer.Coefficients });
            using var loss = solution.Final.square().sum();
            loss.backward();
            return layer.Coefficients.grad!.data<double>().ToArray();
        }

        var autograd = GradientBy(Sensitivities.Autograd());
        var adjoint = GradientBy(Sensitivities.Adjoint());
        using var final = Ode.Solve(Field, x0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), tight).Final.detach();
        using var spectral = DepthGradients.Spectral(basis, Field, () => layer.LastWeights, x0, final * 2.0, 1e-9, Solvers.Dopri5(), tight);
        var quadrature = spectral.data<double>().ToArray();
        for (int i = 0; i < autograd.Length; i++)
        {
            Assert.Equal(autograd[i], adjoint[i], 7);
            Assert.Equal(autograd[i], quadrature[i], 7);
        }
        using var theorem1 = DepthGradients.Theorem1(Field, () => layer.LastWeights, x0, 0, 1, final * 2.0, new[] { 0.25, 0.5 }, Solvers.Dopri5(), tight);
        Assert.Equal(new long[] { 2, 6 }, theorem1.shape);
    }

    /// <summary>Stacked Neural ODEs from C#: Corollary 2's per-interval gradient equals autograd through
    /// <see cref="Ode.SolveStacked"/> and the adjoint's.</summary>
    [Fact]
    public void StackedGradientsAgreeAcrossMethods()
    {
        var partition = new[] { 0.0, 0.4, 1.0 };
        using var layer = new StackedLinear(2, 2, partition, torch.ScalarType.Float64);
        var generator = new torch.Generator(5);
        using (torch.no_grad()) layer.Weights.copy_(torch.randn(layer.Weights.shape, dtype: torch.float64, generator: generator) * 0.6);
        using var x0 = torch.randn(new long[] { 3, 2 }, dtype: torch.float64, generator: generator);
        Func<double, torch.Tensor, torch.Tensor> FieldFor(int i) => (s, x) => layer.forward(x, i).tanh();
        var tight = StepSize.Adaptive(1e-10, 1e-12);

        double[] GradientBy(Sensitivity sensitivity)
        {
            layer.Weights.grad?.zero_();
            using var states = Ode.SolveStacked(FieldFor, partition, x0, Solvers.Dopri5(), tight, sensitivity, layer.parameters());
            Assert.Equal(new long[] { 3, 3, 2 }, states.shape);
            using var loss = states[2].square().sum();
            loss.backward();
            return layer.Weights.grad!.data<double>().ToArray();
        }

        var autograd = GradientBy(Sensitivities.Autograd());
        var adjoint = GradientBy(Sensitivities.Adjoint());
        using var final = Ode.SolveStacked(FieldFor, partition, x0, Solvers.Dopri5(), tight)[2].detach();
        using var corollary2 = DepthGradients.Stacked(FieldFor, () => layer.LastWeights, partition, x0, final * 2.0, 1e-9, Solvers.Dopri5(), tight);
        Assert.Equal(new long[] { 2, 6 }, corollary2.shape);
        var byCorollary = corollary2.data<double>().ToArray();
        for (int i = 0; i < autograd.Length; i++)
        {
            Assert.Equal(autograd[i], adjoint[i], 7);
            Assert.Equal(autograd[i], byCorollary[i], 7);
        }
        var e = Assert.Throws<ArgumentNullException>(() => Ode.SolveStacked(FieldFor, partition, x0, sensitivity: Sensitivities.Adjoint()));
        Assert.Equal("parameters", e.ParamName);
    }

    /// <summary>The closed form of the diagonal linear Galerkin field from C#: autograd through Dopri5 agrees.</summary>
    [Fact]
    public void ClosedFormMatchesAutogradForTheDiagonalLinearField()
    {
        var basis = Bases.Legendre(3);
        var generator = new torch.Generator(11);
        using var alpha = (torch.randn(new long[] { 2, 3 }, dtype: torch.float64, generator: generator) * 0.4).requires_grad_(true);
        using var z0 = torch.randn(new long[] { 4, 2 }, dtype: torch.float64, generator: generator);
        Func<double, torch.Tensor, torch.Tensor> field = (s, z) =>
        {
            using var psi = torch.tensor(basis.Values(s), dtype: torch.float64);
            return alpha.mv(psi) * z;
        };
        using var solution = Ode.Solve(field, z0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-11, 1e-13));
        using var loss = solution.Final.square().sum();
        loss.backward();
        using var exactFinal = DepthGradients.DiagonalLinearSolution(basis, alpha.detach(), z0);
        using var exact = DepthGradients.DiagonalLinearGradient(basis, alpha.detach(), z0, exactFinal * 2.0);
        var a = alpha.grad!.data<double>().ToArray();
        var b = exact.data<double>().ToArray();
        for (int i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 8);
        Assert.Equal(exactFinal.data<double>().ToArray()[0], solution.Final.detach().data<double>().ToArray()[0], 9);
    }
}
