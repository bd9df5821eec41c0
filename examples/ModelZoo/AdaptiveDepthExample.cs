using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Adaptive depth (§4.3): each input gets its own depth S(x) from a learned module, so the reflection
/// φ(x) = −x is learned by a 1-D flow without crossing trajectories: samples stop at different depths. The field
/// depends on depth through <see cref="DepthCat"/>, which takes a depth per sample.</summary>
public static class AdaptiveDepthExample
{
    /// <summary>Trains the model; returns its final loss.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        torch.manual_seed(4);
        using var model = new AdaptiveDepthBlock(
            vectorField: Sequential(new DepthCat(), Linear(2, 16), Tanh(), Linear(16, 1)),
            depth: Sequential(Linear(1, 16), Tanh(), Linear(16, 1)),
            solver: Solvers.Rk4(), stepSize: StepSize.Steps(10));
        var loss = Data.FitReflection(model, quick ? 200 : 400, "adaptive depth", log);
        using var x = torch.tensor(new[] { -1f, 0f, 1f }).reshape(3, 1);
        using var depths = model.Depths(x);
        log.WriteLine($"final loss {loss:F5}; learned depths S(−1), S(0), S(1) = {string.Join(", ", depths.data<float>().ToArray().Select(d => d.ToString("F3")))}");
        return loss;
    }
}
