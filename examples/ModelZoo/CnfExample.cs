using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Continuous normalizing flows (FFJORD; Dissecting Neural ODEs §4.2): a density on a 2-D Gaussian mixture
/// learned by maximum likelihood with Hutchinson's trace estimator, then sampled by the reverse solve; and a
/// conditional flow whose samples follow the class it is given.</summary>
public static class CnfExample
{
    /// <summary>Trains both flows; returns the rise of the held-out mean log-likelihood (nats).</summary>
    public static double Run(bool quick, TextWriter log)
    {
        torch.manual_seed(7);
        using var g = new torch.Generator(7);
        using var field = Sequential(Linear(2, 32), Tanh(), Linear(32, 32), Tanh(), Linear(32, 2));
        using (torch.no_grad()) foreach (var p in field.parameters()) p.mul_(0.3);
        using var flow = new ContinuousNormalizingFlow(field, 2, TraceEstimator.Hutchinson, solver: Solvers.Rk4(),
            stepSize: StepSize.Steps(6), generator: g);
        using var heldOut = Data.MixtureHeldOut();
        var iterations = quick ? 60 : 400;
        var (before, after) = Data.TrainOnMixture(flow, heldOut, iterations);
        using var exact = Datasets.GaussianMixtureLogDensity(heldOut, components: 4, radius: 2.0, sigma: 0.4);
        log.WriteLine($"held-out mean log-likelihood: {before:F3} before, {after:F3} after {iterations} iterations (the true density: {exact.mean().ToDouble():F3})");
        using (var scope = torch.NewDisposeScope())
        {
            var samples = flow.Sample(5, generator: g);
            log.WriteLine($"five samples: {string.Join("  ", Enumerable.Range(0, 5).Select(k => $"({samples[k, 0].ToSingle():F2}, {samples[k, 1].ToSingle():F2})"))}");
        }
        Conditional(quick, log);
        return after - before;
    }

    /// <summary>A flow conditioned on a one-hot class label (<see cref="ConditionCat"/>): class 0 at (−2, 0), class 1
    /// at (2, 0).</summary>
    static void Conditional(bool quick, TextWriter log)
    {
        using var g = new torch.Generator(8);
        using var field = Sequential(new ConditionCat(), Linear(4, 32), Tanh(), Linear(32, 2));
        using var flow = new ContinuousNormalizingFlow(field, 2, solver: Solvers.Rk4(), stepSize: StepSize.Steps(6), generator: g);
        using var optimizer = torch.optim.Adam(flow.parameters(), 0.02);
        for (var i = 0; i < (quick ? 60 : 300); i++)
        {
            using var scope = torch.NewDisposeScope();
            var label = torch.randint(0, 2, new long[] { 128 }, generator: g);
            var centre = (label.to_type(torch.float32) * 4 - 2).unsqueeze(1);
            var x = torch.cat(new[] { centre, torch.zeros_like(centre) }, 1) + 0.5f * torch.randn(128, 2, generator: g);
            optimizer.zero_grad();
            var loss = -flow.LogProbability(x, functional.one_hot(label, 2).to_type(torch.float32)).mean();
            loss.backward();
            optimizer.step();
        }
        using var noGrad = torch.no_grad();
        foreach (var c in new[] { 0, 1 })
        {
            using var scope = torch.NewDisposeScope();
            var condition = functional.one_hot(torch.full(500, c, dtype: torch.int64), 2).to_type(torch.float32);
            var samples = flow.Sample(500, condition, g);
            log.WriteLine($"class {c}: sample mean x = {samples[.., 0].mean().ToSingle():F2} (target {(c == 0 ? -2 : 2)})");
        }
    }
}
