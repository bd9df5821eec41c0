using System.Diagnostics;
using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>The compiled field backend: a standard MLP field (Linear and tanh layers) solved with fixed RK4 steps and
/// autograd runs the one integration loop on host buffers with the discrete adjoint of its steps — the module's steps,
/// evaluations and gradients; solved with Dopri5 and the adjoint, its forward and backward solves run on host buffers
/// with the module's adjoint steps. Nothing to opt into — <see cref="NeuralOdeBlock.Backend"/> is
/// <see cref="FieldBackend.Auto"/> by default; this example trains the same annuli classifier both ways, for each, and
/// compares the losses and the time per iteration.</summary>
public static class FieldBackendExample
{
    /// <summary>Trains on the compiled backend and on the module, by autograd through RK4 and by the adjoint with
    /// Dopri5, from the same weights; returns the largest difference between the loss curves (float32 rounding: ~1e-6).</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var iterations = quick ? 20 : 200;
        var byAutograd = Compare("RK4 × 20, autograd", Solvers.Rk4(), StepSize.Steps(20), Sensitivities.Autograd(), iterations, log);
        var byAdjoint = Compare("Dopri5 at 1e-5, adjoint", Solvers.Dopri5(), StepSize.Adaptive(1e-5, 1e-5), Sensitivities.Adjoint(), iterations, log);
        return Math.Max(byAutograd, byAdjoint);
    }

    /// <summary>Trains on the compiled backend and on the module from the same weights; returns the largest difference
    /// between the loss curves.</summary>
    static double Compare(string what, Solver solver, StepSize stepSize, Sensitivity sensitivity, int iterations, TextWriter log)
    {
        (double[] Losses, double MsPerIteration, string Backend) Train(FieldBackend backend)
        {
            torch.manual_seed(1);
            using var field = Sequential(Linear(2, 64), Tanh(), Linear(64, 64), Tanh(), Linear(64, 2));
            using var block = new NeuralOdeBlock(field, solver: solver, stepSize: stepSize, sensitivity: sensitivity);
            block.Backend = backend;
            using var readout = Linear(2, 2);
            var parameters = block.parameters().Concat(readout.parameters());
            using var optimizer = torch.optim.Adam(parameters, 1e-3);
            var (x, y) = Datasets.Annuli(1024, seed: 3);
            using var inputs = x;
            using var labels = y;
            var losses = new double[iterations];
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < iterations; i++)
            {
                using var scope = torch.NewDisposeScope();
                optimizer.zero_grad();
                var loss = functional.cross_entropy(readout.forward(block.forward(inputs)), labels);
                loss.backward();
                optimizer.step();
                losses[i] = loss.ToDouble();
            }
            return (losses, clock.Elapsed.TotalMilliseconds / iterations, block.LastStatistics.Backend);
        }
        var compiled = Train(FieldBackend.Auto);
        var module = Train(FieldBackend.Module);
        var difference = compiled.Losses.Zip(module.Losses, (a, b) => Math.Abs(a - b)).Max();
        log.WriteLine($"{what}: ran on {compiled.Backend}; loss {compiled.Losses[0]:F4} → {compiled.Losses[^1]:F4}");
        log.WriteLine($"  per iteration: compiled {compiled.MsPerIteration:F1} ms, module {module.MsPerIteration:F1} ms (this machine, this run)");
        log.WriteLine($"  largest difference between the two loss curves: {difference:E2}");
        return difference;
    }
}
