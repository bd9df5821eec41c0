using System.Diagnostics;
using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>The fused solver: a standard MLP field (Linear and tanh layers) solved with fixed RK4 steps and autograd
/// runs as one custom autograd function on preallocated buffers, with the generic solver's steps, evaluations and
/// gradients. Nothing to opt into — <see cref="NeuralOdeBlock.UseFusedKernels"/> is on by default; this example trains
/// the same annuli classifier both ways and compares the losses and the time per iteration.</summary>
public static class FusedSolverExample
{
    /// <summary>Trains with the fused solver and with the generic one from the same weights; returns the largest
    /// difference between their loss curves (float32 rounding: ~1e-6).</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var iterations = quick ? 20 : 200;
        (double[] Losses, double MsPerIteration, bool Fused) Train(bool fused)
        {
            torch.manual_seed(1);
            using var field = Sequential(Linear(2, 64), Tanh(), Linear(64, 64), Tanh(), Linear(64, 2));
            using var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(20));
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
        log.WriteLine($"fused solver ran: {fusedRun.Fused}; loss {fusedRun.Losses[0]:F4} → {fusedRun.Losses[^1]:F4}");
        log.WriteLine($"per iteration: fused {fusedRun.MsPerIteration:F1} ms, generic {genericRun.MsPerIteration:F1} ms (this machine, this run)");
        log.WriteLine($"largest difference between the two loss curves: {difference:E2}");
        return difference;
    }
}
