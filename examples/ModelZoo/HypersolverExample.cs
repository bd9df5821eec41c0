using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Hypersolvers (Poli et al. 2020): a hyper-Euler — Euler plus a small network trained on Euler's local
/// truncation error against a reference solve — on a Neural ODE field, compared with plain Euler at the same and at
/// more steps.</summary>
public static class HypersolverExample
{
    /// <summary>Trains the correction; returns how many times more accurate the hyper-Euler is than Euler at 10 steps.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        torch.manual_seed(5);
        using var mlp = Sequential(Linear(2, 32), Tanh(), Linear(32, 2));
        using (torch.no_grad()) foreach (var p in mlp.parameters()) p.mul_(2.0);   // a field with some curvature
        Func<double, torch.Tensor, torch.Tensor> field = (t, z) => mlp.forward(z);
        using var correction = Sequential(Linear(4, 64), Tanh(), Linear(64, 2));
        var hyper = new Hypersolver(Solvers.Euler(), correction);
        var (training, _) = Datasets.Annuli(1024, seed: 1);
        using var train = training;
        var losses = hyper.Train(field, train, 0.0, 1.0, steps: 10, iterations: quick ? 300 : 1500, tolerance: 1e-6);
        log.WriteLine($"residual fit: {losses[0]:G3} → {losses[^1]:G3}");
        var (test, _) = Datasets.Annuli(512, seed: 2);
        using var z0 = test;
        using var noGrad = torch.no_grad();
        using var reference = Ode.Solve(field, z0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-7, 1e-7));
        double Error(torch.Tensor x) { using var d = (x - reference.Final).abs().max(); return d.ToDouble(); }
        using var states = hyper.Solve(field, z0, 0.0, 1.0, 10);
        var hyperError = Error(states[10]);
        log.WriteLine($"hyper-Euler, 10 steps: max error {hyperError:E2}");
        double eulerAt10 = 0;
        foreach (var n in new[] { 10, 40, 160 })
        {
            using var euler = Ode.Solve(field, z0, new[] { 0.0, 1.0 }, Solvers.Euler(), StepSize.Steps(n));
            var e = Error(euler.Final);
            if (n == 10) eulerAt10 = e;
            log.WriteLine($"Euler, {n} steps: max error {e:E2}");
        }
        return eulerAt10 / hyperError;
    }
}
