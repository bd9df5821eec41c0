using System.IO;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>The paper's models through the C# facade: composition, exact answers, and training.</summary>
public class ModelTests
{
    sealed class TimesDepth : DepthAwareModule
    {
        public TimesDepth() : base("times_depth") { }
        public override torch.Tensor forward(torch.Tensor x) => torch.ones_like(x) * Depth;
    }

    [Fact]
    public void ACSharpDepthAwareModuleIsToldTheDepth()
    {
        // dz/ds = s: z(2) = z(0) + 2.
        using var block = new NeuralOdeBlock(Sequential(new TimesDepth()), times: new[] { 0.0, 2.0 },
            solver: Solvers.Rk4(), stepSize: StepSize.Steps(4));
        using var x = torch.tensor(new[] { 1.0, -3.0 }).reshape(2, 1);
        using var z = block.forward(x);
        Assert.Equal(new[] { 3.0, -1.0 }, z.data<double>().ToArray().Select(v => Math.Round(v, 12)));
    }

    [Fact]
    public void GalerkinLayersComposeInsideASequentialAndTheAdjointFindsTheirParameters()
    {
        torch.manual_seed(1);
        using var galerkin = new GalerkinLinear(2, 2, Bases.Fourier(1), torch.ScalarType.Float64);
        using (torch.no_grad()) galerkin.Coefficients.normal_();
        using var block = new NeuralOdeBlock(Sequential(galerkin, Tanh()), solver: Solvers.Dopri5(),
            stepSize: StepSize.Adaptive(1e-9, 1e-11), sensitivity: Sensitivities.Adjoint());
        using var x = torch.randn(3, 2, dtype: torch.ScalarType.Float64);
        using var z = block.forward(x);
        using var loss = z.square().sum();
        Ode.Backward(loss);
        var adjoint = galerkin.Coefficients.grad!.data<double>().ToArray();
        galerkin.Coefficients.grad!.zero_();
        // The same field by hand with explicit depth, by autograd.
        using var solution = Ode.Solve((s, v) => galerkin.forward(v, s).tanh(), x, new[] { 0.0, 1.0 },
            Solvers.Dopri5(), StepSize.Adaptive(1e-9, 1e-11));
        using var loss2 = solution.Final.square().sum();
        loss2.backward();
        var autograd = galerkin.Coefficients.grad!.data<double>().ToArray();
        for (var i = 0; i < autograd.Length; i++) Assert.Equal(autograd[i], adjoint[i], 6);
        Assert.Contains(autograd, g => Math.Abs(g) > 1e-3);
    }

    [Fact]
    public void ASecondOrderFieldIntegratesTheHarmonicOscillator()
    {
        using var field = new HigherOrderField(2, new Negate());
        using var block = new NeuralOdeBlock(field, times: new[] { 0.0, 1.0 }, stepSize: StepSize.Adaptive(1e-10, 1e-12));
        using var z0 = torch.tensor(new[] { 1.0, 0.0 }).reshape(1, 2);
        using var z = block.forward(z0);
        var v = z.data<double>().ToArray();
        Assert.Equal(Math.Cos(1.0), v[0], 8);
        Assert.Equal(-Math.Sin(1.0), v[1], 8);
    }

    sealed class Negate : Module<torch.Tensor, torch.Tensor>
    {
        public Negate() : base("negate") { }
        public override torch.Tensor forward(torch.Tensor z) => -z.narrow(1, 0, 1);
    }

    [Fact]
    public void SolveSpansIntegratesEverySampleOverItsOwnSpan()
    {
        using var x0 = torch.ones(3, 1, dtype: torch.ScalarType.Float64);
        using var t0 = torch.tensor(new[] { 0.0, 1.0, 0.0 });
        using var t1 = torch.tensor(new[] { 1.0, 1.0, -2.0 });
        using var solution = Ode.SolveSpans((t, x) => -x, x0, t0, t1, stepSize: StepSize.Adaptive(1e-10, 1e-12));
        var v = solution.Final.data<double>().ToArray();
        Assert.Equal(Math.Exp(-1), v[0], 8);
        Assert.Equal(1.0, v[1], 12);
        Assert.Equal(Math.Exp(2), v[2], 7);
    }

    [Fact]
    public void ARunningLossComesBackWithTheOutput()
    {
        using var block = new NeuralOdeBlock(Sequential(new TimesDepth()), solver: Solvers.Rk4(), stepSize: StepSize.Steps(8),
            integralLoss: (s, z) => z.sum());
        using var x = torch.zeros(1, 1, dtype: torch.ScalarType.Float64);
        var (output, integral) = block.ForwardWithIntegral(x);
        using var _o = output;
        using var _i = integral;
        // z(s) = s²/2, ∫_0^1 s²/2 ds = 1/6.
        Assert.Equal(1.0 / 6.0, integral.ToDouble(), 10);
        Assert.Equal(0.5, output.ToDouble(), 10);
    }

    [Fact]
    public void AugmentationExampleSeparatesAnnuli()
    {
        Assert.True(ModelZoo.AugmentationExample.Run(quick: true, TextWriter.Null) >= 0.98);
        // The second-order model (only the acceleration learned) trains from C# too.
        Assert.True(ModelZoo.AugmentationExample.SecondOrderAccuracy >= 0.95, $"{ModelZoo.AugmentationExample.SecondOrderAccuracy}");
    }

    [Fact]
    public void DataControlExampleLearnsTheReflection() =>
        Assert.True(ModelZoo.DataControlExample.Run(quick: true, TextWriter.Null) < 0.02);

    [Fact]
    public void AdaptiveDepthExampleLearnsTheReflection() =>
        Assert.True(ModelZoo.AdaptiveDepthExample.Run(quick: true, TextWriter.Null) < 0.02);

    [Fact]
    public void FieldBackendExampleTrainsAsTheModuleDoes() =>
        Assert.True(ModelZoo.FieldBackendExample.Run(quick: true, TextWriter.Null) < 1e-4);

    [Fact]
    public void CnfExampleRaisesTheLogLikelihood() =>
        Assert.True(ModelZoo.CnfExample.Run(quick: true, TextWriter.Null) > 0.5);

    [Fact]
    public void RegularisersExampleSavesFunctionEvaluations() =>
        Assert.True(ModelZoo.RegularisersExample.Run(quick: true, TextWriter.Null) < 0.75);

    [Fact]
    public void DepthVariantExampleFits() =>
        Assert.True(ModelZoo.DepthVariantExample.Run(quick: true, TextWriter.Null) < 0.02);

    [Fact]
    public void SymbolicExampleMatchesAutograd() =>
        Assert.True(ModelZoo.SymbolicExample.Run(quick: true, TextWriter.Null) < 1e-10);

    [Fact]
    public void SymbolicFieldExampleLearnsTheDensity() =>
        Assert.True(ModelZoo.SymbolicFieldExample.Run(quick: true, TextWriter.Null) > 0.2);

    [Fact]
    public void HamiltonianExampleKeepsTheEnergyWhereAPlainFieldDrifts()
    {
        var hnn = ModelZoo.HamiltonianExample.Run(quick: true, TextWriter.Null);
        Assert.True(hnn < 0.05, $"HNN energy error {hnn}");
        Assert.True(hnn < ModelZoo.HamiltonianExample.PlainDrift / 5, $"HNN {hnn}, plain {ModelZoo.HamiltonianExample.PlainDrift}");
    }

    [Fact]
    public void SymplecticExampleKeepsTheEnergyBounded() =>
        Assert.True(ModelZoo.SymplecticExample.Run(quick: true, TextWriter.Null) < 0.075);   // measured 6.67% (O(h²), h = 0.5)

    [Fact]
    public void HypersolverExampleBeatsEulerAtTheSameSteps() =>
        Assert.True(ModelZoo.HypersolverExample.Run(quick: true, TextWriter.Null) > 3);   // measured 4.4 (quick)

    [Fact]
    public void MultipleShootingExampleMatchesTheSequentialSolve() =>
        Assert.True(ModelZoo.MultipleShootingExample.Run(quick: true, TextWriter.Null) < 1e-9);
}
