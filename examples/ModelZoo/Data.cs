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
}
