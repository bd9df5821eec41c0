using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>The toy data of the examples.</summary>
static class Data
{
    /// <summary>φ(x) = −x on 64 points of [−1, 1].</summary>
    public static (torch.Tensor X, torch.Tensor Y) Reflection()
    {
        var x = torch.linspace(-1, 1, 64).reshape(64, 1);
        return (x, -x);
    }

    /// <summary>Fits <paramref name="model"/> to the reflection by Adam on the mean squared error; returns the final loss.</summary>
    public static double FitReflection(Module<torch.Tensor, torch.Tensor> model, int iterations, string name, TextWriter log)
    {
        var (x, y) = Reflection();
        using var _x = x;
        using var _y = y;
        return Fit(model, x, y, iterations, 0.02, name, log);
    }

    /// <summary>Fits <paramref name="model"/> to map x to y by Adam on the mean squared error (full batch), logging
    /// four times; returns the final loss.</summary>
    public static double Fit(Module<torch.Tensor, torch.Tensor> model, torch.Tensor x, torch.Tensor y, int iterations,
                             double learningRate, string name, TextWriter log)
    {
        using var optimizer = torch.optim.Adam(model.parameters(), learningRate);
        var last = double.NaN;
        for (var i = 1; i <= iterations; i++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = (model.forward(x) - y).square().mean();
            loss.backward();
            optimizer.step();
            last = loss.ToDouble();
            if (i % Math.Max(1, iterations / 4) == 0) log.WriteLine($"{name}: iteration {i}, loss {last:F5}");
        }
        return last;
    }

    /// <summary>The held-out set of the flow examples: 1,000 points of the 4-component Gaussian mixture (radius 2,
    /// σ 0.4, seed 99).</summary>
    public static torch.Tensor MixtureHeldOut() =>
        NeuralOde.Datasets.GaussianMixture(1000, components: 4, radius: 2.0, sigma: 0.4, seed: 99).Inputs;

    /// <summary>Trains <paramref name="flow"/> on the mixture by maximum likelihood (Adam at 0.01, a fresh batch of 256
    /// per iteration, seeds 1, 2, …); returns the mean log-likelihood of <paramref name="heldOut"/> before and after.</summary>
    public static (double Before, double After) TrainOnMixture(NeuralOde.ContinuousNormalizingFlow flow, torch.Tensor heldOut, int iterations)
    {
        var before = MeanLogLikelihood(flow, heldOut);
        using var optimizer = torch.optim.Adam(flow.parameters(), 0.01);
        for (var i = 1; i <= iterations; i++)
        {
            using var scope = torch.NewDisposeScope();
            var (x, _) = NeuralOde.Datasets.GaussianMixture(256, components: 4, radius: 2.0, sigma: 0.4, seed: i);
            optimizer.zero_grad();
            var loss = -flow.LogProbability(x).mean();
            loss.backward();
            optimizer.step();
        }
        return (before, MeanLogLikelihood(flow, heldOut));
    }

    static double MeanLogLikelihood(NeuralOde.ContinuousNormalizingFlow flow, torch.Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        return flow.LogProbability(x).mean().ToDouble();
    }
}
