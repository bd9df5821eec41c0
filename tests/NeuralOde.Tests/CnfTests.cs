using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

public class CnfTests
{
    /// <summary>n points of two Gaussians (sd 0.5) at (−2, 0) and (2, 0), with their labels.</summary>
    static (torch.Tensor X, torch.Tensor Label) TwoClasses(int n, torch.Generator g)
    {
        using var scope = torch.NewDisposeScope();
        var label = torch.randint(0, 2, new long[] { n }, dtype: torch.int64, generator: g);
        var centre = (label.to_type(torch.float64) * 4.0 - 2.0).unsqueeze(1);
        var x = torch.cat(new[] { centre, torch.zeros_like(centre) }, 1) + torch.randn(new long[] { n, 2 }, dtype: torch.float64, generator: g) * 0.5;
        return (x.MoveToOuterDisposeScope(), label.MoveToOuterDisposeScope());
    }

    static double MeanLogLikelihood(ContinuousNormalizingFlow flow, torch.Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        return flow.LogProbability(x).mean().ToDouble();
    }

    [Fact]
    public void AFlowTrainsFromCSharpAndItsLogLikelihoodRises()
    {
        using var g = new torch.Generator(3);
        using var field = Sequential(Linear(2, 32, dtype: torch.float64), Tanh(), Linear(32, 2, dtype: torch.float64));
        using (torch.no_grad())
            foreach (var p in field.parameters()) p.mul_(0.3);
        using var flow = new ContinuousNormalizingFlow(field, 2, TraceEstimator.Hutchinson, HutchinsonNoise.Rademacher,
            Solvers.Rk4(), StepSize.Steps(6), generator: g);
        var (heldOut, _) = TwoClasses(1000, g);
        using var held = heldOut;
        double before = MeanLogLikelihood(flow, held);
        using var optimizer = torch.optim.Adam(flow.parameters(), 0.02);
        for (int i = 0; i < 100; i++)
        {
            using var scope = torch.NewDisposeScope();
            var (x, _) = TwoClasses(128, g);
            optimizer.zero_grad();
            var loss = -flow.LogProbability(x).mean();
            loss.backward();
            optimizer.step();
        }
        double after = MeanLogLikelihood(flow, held);
        Assert.True(after > before + 1.0, $"held-out mean log-likelihood {before:F3} -> {after:F3}");
        Assert.Equal(new SolveStatistics(24, 6, 0), flow.LastStatistics);
        using var samples = flow.Sample(5, generator: g);
        Assert.Equal(new long[] { 5, 2 }, samples.shape);
    }

    [Fact]
    public void TheFusedAdjointGivesTheGenericAdjointsLogLikelihoodAndGradients()
    {
        using var g = new torch.Generator(8);
        using var field = Sequential(Linear(2, 16, dtype: torch.float64), Softplus(), Linear(16, 16, dtype: torch.float64),
                                     Softplus(), Linear(16, 2, dtype: torch.float64));
        var (x, _) = TwoClasses(24, g);
        using var data = x;
        (double[] LogP, double[][] Gradients, SolveStatistics Forward, int Backward) Run(bool fused)
        {
            using var probes = new torch.Generator(5);
            // Not disposed: that would dispose the field, which both runs use.
            var flow = new ContinuousNormalizingFlow(field, 2, TraceEstimator.Hutchinson, HutchinsonNoise.Gaussian,
                Solvers.Dopri5(), StepSize.Adaptive(1e-7, 1e-7), Sensitivities.Adjoint(), probes);
            flow.Backend = fused ? FieldBackend.Auto : FieldBackend.Module;
            flow.zero_grad();
            using var logp = flow.LogProbability(data);
            Assert.Equal(fused, flow.LastStatistics.Backend.StartsWith("compiled"));
            using var loss = -logp.mean();
            Ode.Backward(loss);
            var result = (logp.detach().data<double>().ToArray(),
                          field.parameters().Select(p => p.grad!.data<double>().ToArray()).ToArray(),
                          flow.LastStatistics, flow.LastBackwardStatistics.FunctionEvaluations);
            flow.Backend = FieldBackend.Auto;
            return result;
        }
        var fused = Run(true);
        var generic = Run(false);
        for (var i = 0; i < fused.LogP.Length; i++) Assert.Equal(generic.LogP[i], fused.LogP[i], 1e-9);
        for (var p = 0; p < fused.Gradients.Length; p++)
            for (var i = 0; i < fused.Gradients[p].Length; i++) Assert.Equal(generic.Gradients[p][i], fused.Gradients[p][i], 1e-9);
        Assert.Equal(generic.Forward, fused.Forward);
        Assert.Equal(generic.Backward, fused.Backward);
    }

    [Fact]
    public void AConditionalFlowReadsItsConditionThroughConditionCat()
    {
        using var field = Sequential(new ConditionCat(), Linear(4, 8, dtype: torch.float64), Tanh(), Linear(8, 2, dtype: torch.float64));
        using var flow = new ContinuousNormalizingFlow(field, 2, solver: Solvers.Rk4(), stepSize: StepSize.Steps(4));
        using var x = torch.zeros(3, 2, dtype: torch.float64);
        using var c0 = torch.tensor(new double[] { 1, 0, 1, 0, 1, 0 }).reshape(3, 2);
        using var c1 = torch.tensor(new double[] { 0, 1, 0, 1, 0, 1 }).reshape(3, 2);
        using var l0 = flow.LogProbability(x, c0);
        using var l1 = flow.LogProbability(x, c1);
        Assert.True((l0 - l1).abs().max().ToDouble() > 1e-6, "the condition changes the density");
        Assert.Throws<ArgumentException>(() => flow.LogProbability(x));
    }

    [Fact]
    public void TheKineticEnergyRegulariserIntegratesThroughOdeSolve()
    {
        // dx/dt = −x: ∫₀¹ ‖x(t)‖² dt = ‖x0‖² (1 − e⁻²) / 2.
        Func<double, torch.Tensor, torch.Tensor> f = (_, x) => -x;
        using var x0 = torch.tensor(new[] { 1.0, -2.0, 0.5 }, dtype: torch.float64);
        using var solution = Ode.Solve(f, x0, new[] { 0.0, 1.0 }, stepSize: StepSize.Adaptive(1e-10, 1e-12),
                                       integralLoss: Regularisers.KineticEnergy(f));
        double expected = 5.25 * (1 - Math.Exp(-2)) / 2;
        Assert.Equal(expected, solution.Integral!.ToDouble(), 8);
    }

    [Fact]
    public void RegularisedGradientsAgreeBetweenAutogradAndTheAdjoint()
    {
        using var field = Sequential(Linear(2, 8, dtype: torch.float64), Tanh(), Linear(8, 2, dtype: torch.float64));
        torch.Tensor F(double t, torch.Tensor x) => field.forward(x);
        double[] Gradients(Sensitivity sensitivity)
        {
            using var scope = torch.NewDisposeScope();
            field.zero_grad();
            var x0 = torch.tensor(new[] { 0.5, -1.0, 1.5, 0.2 }, dtype: torch.float64).reshape(2, 2);
            using var g = new torch.Generator(5);
            using var solution = Ode.Solve(F, x0, new[] { 0.0, 1.0 }, stepSize: StepSize.Adaptive(1e-10, 1e-12),
                sensitivity: sensitivity, parameters: field.parameters(),
                integralLoss: Regularisers.JacobianFrobenius(F, HutchinsonNoise.Gaussian, g));
            Ode.Backward(solution.Final.square().sum() + solution.Integral!);
            return field.parameters().SelectMany(p => p.grad!.data<double>().ToArray()).ToArray();
        }
        var byAutograd = Gradients(Sensitivities.Autograd());
        var byAdjoint = Gradients(Sensitivities.Adjoint());
        double diff = Math.Sqrt(byAutograd.Zip(byAdjoint, (a, b) => (a - b) * (a - b)).Sum());
        double norm = Math.Sqrt(byAutograd.Sum(a => a * a));
        Assert.True(norm > 0 && diff / norm < 1e-6, $"relative error {diff / norm:E2}");
    }
}
