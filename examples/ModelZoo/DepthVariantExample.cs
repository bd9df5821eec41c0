using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Depth-variant fields (§3): Galerkin and stacked layers, and a layer of your own, composed with ordinary
/// layers inside the field of a <see cref="NeuralOdeBlock"/> — the block tells each the depth — fitted to a map that
/// needs depth dependence.</summary>
public static class DepthVariantExample
{
    /// <summary>A custom depth-aware layer: scales its input by (1 + s).</summary>
    sealed class ScaleByDepth : DepthAwareModule
    {
        public ScaleByDepth() : base("scale_by_depth") { }
        public override torch.Tensor forward(torch.Tensor x) => x * (1 + Depth);
    }

    /// <summary>Trains a Galerkin and a stacked model on x ↦ sin(2x) + x; returns the larger final loss.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var iterations = quick ? 100 : 300;
        torch.manual_seed(5);
        using var galerkin = new NeuralOdeBlock(Sequential(
            Linear(1, 16), Tanh(), new GalerkinLinear(16, 16, Bases.Fourier(2)), Tanh(), new ScaleByDepth(), Linear(16, 1)),
            solver: Solvers.Rk4(), stepSize: StepSize.Steps(10));
        var a = Fit(galerkin, iterations, "Galerkin", log);
        using var stacked = new NeuralOdeBlock(Sequential(
            Linear(1, 16), Tanh(), new StackedLinear(16, 16, new[] { 0.0, 0.5, 1.0 }), Tanh(), Linear(16, 1)),
            solver: Solvers.Rk4(), stepSize: StepSize.Steps(10));
        var b = Fit(stacked, iterations, "stacked", log);
        return Math.Max(a, b);
    }

    static double Fit(NeuralOdeBlock block, int iterations, string name, TextWriter log)
    {
        using var x = torch.linspace(-1, 1, 64).reshape(64, 1);
        using var y = (2 * x).sin() + x;
        var last = Data.Fit(block, x, y, iterations, 0.01, name, log);
        log.WriteLine($"{name}: final loss {last:F5}, {block.LastStatistics}");
        return last;
    }
}
