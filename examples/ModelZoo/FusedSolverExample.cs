using System.Diagnostics;
using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>The fused kernels: a standard MLP field (Linear and tanh layers) solved with fixed RK4 steps and autograd
/// runs as one custom autograd function on preallocated buffers, with the generic solver's steps, evaluations and
/// gradients; solved with Dopri5 and the adjoint, its forward and backward solves run on flat buffers with the generic
/// adjoint's steps. Nothing to opt into — <see cref="NeuralOdeBlock.UseFusedKernels"/> is on by default; this example
/// trains the same annuli classifier both ways, for each, and compares the losses and the time per iteration.</summary>
public static class FusedSolverExample
{
    /// <summary>Trains with the fused kernels and without, by autograd through RK4 and by the adjoint with Dopri5, from
    /// the same weights; returns the largest difference between the loss curves (float32 rounding: ~1e-6).</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var iterations = quick ? 20 : 200;
        var byAutograd = Compare("RK4 × 20, autograd", Solvers.Rk4(), StepSize.Steps(20), Sensitivities.Autograd(), iterations, log);
        var byAdjoint = Compare("Dopri5 at 1e-5, adjoint", Solvers.Dopri5(), StepSize.Adaptive(1e-5, 1e-5), Sensitivities.Adjoint(), iterations, log);
        return Math.Max(byAutograd, byAdjoint);
    }

    /// <summary>Trains with the fused kernels and without from the same weights; returns the largest difference between
    /// the loss curves.</summary>
    static double Compare(string what, Solver solver, StepSize stepSize, Sensitivity sensitivity, int iterations, TextWriter log)
    {
        (double[] Losses, double MsPerIteration, bool Fused) Train(bool fused)
        {
            torch.manual_seed(1);
            using var field = Sequential(Linear(2, 64), Tanh(), Linear(64, 64), Tanh(), Linear(64, 2));
            using var block = new NeuralOdeBlock(field, solver: solver, stepSize: stepSize, sensitivity: sensitivity);
            block.UseFusedKernels = fused;
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
            return (losses, clock.Elapsed.TotalMilliseconds / iterations, block.LastSolveWasFused);
        }
        var fusedRun = Train(fused: true);
        var genericRun = Train(fused: false);
        var difference = fusedRun.Losses.Zip(genericRun.Losses, (a, b) => Math.Abs(a - b)).Max();
        log.WriteLine($"{what}: fused kernels ran: {fusedRun.Fused}; loss {fusedRun.Losses[0]:F4} → {fusedRun.Losses[^1]:F4}");
        log.WriteLine($"  per iteration: fused {fusedRun.MsPerIteration:F1} ms, generic {genericRun.MsPerIteration:F1} ms (this machine, this run)");
        log.WriteLine($"  largest difference between the two loss curves: {difference:E2}");
        return difference;
    }
}
