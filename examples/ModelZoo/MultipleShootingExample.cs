using System.Diagnostics;
using NeuralOde;
using TorchSharp;

namespace ModelZoo;

/// <summary>Multiple shooting (Differentiable Multiple Shooting Layers, NeurIPS 2021): the van der Pol oscillator over
/// [0, 8] split into segments, solved by each sweep (Zero, Direct, Forward, Backward) from a coarse guess; prints the
/// sweeps, the defect history, the time and the distance to the sequential solve of the same fine steps.</summary>
public static class MultipleShootingExample
{
    private static torch.Tensor VanDerPol(double t, torch.Tensor z)
    {
        using var x = z.select(-1, 0);
        using var v = z.select(-1, 1);
        using var damping = (1.0 - x * x) * v;
        using var acceleration = damping - x;
        return torch.stack(new[] { v, acceleration }, -1);
    }

    /// <summary>Runs the four sweeps; returns the largest distance between their boundary states and the sequential
    /// solve's.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        // Segments of 0.5 (quick: [0, 4]) or 0.25: the coarse guess takes one RK4 step per segment.
        var (span, segments) = quick ? (4.0, 8) : (8.0, 32);
        var times = Enumerable.Range(0, segments + 1).Select(k => span * k / segments).ToArray();
        using var z0 = torch.tensor(new[] { 2.0, 0.0, 0.5, 1.0 }, dtype: torch.float64).reshape(2, 2);

        var watch = Stopwatch.StartNew();
        var sequential = new List<torch.Tensor> { z0.alias() };
        for (var k = 0; k < segments; k++)
        {
            using var solution = Ode.Solve(VanDerPol, sequential[k], new[] { times[k], times[k + 1] }, Solvers.Rk4(), StepSize.Steps(8));
            sequential.Add(solution.States[1].detach());
        }
        using var reference = torch.stack(sequential, 0);
        foreach (var s in sequential) s.Dispose();
        log.WriteLine($"sequential: {segments} segments one after another, {watch.ElapsedMilliseconds} ms");

        var worst = 0.0;
        foreach (var method in Enum.GetValues<ShootingMethod>())
        {
            watch.Restart();
            using var result = MultipleShooting.Solve(VanDerPol, z0, times, method, Solvers.Rk4(), fineSteps: 8,
                                                      maxIterations: segments, tolerance: 1e-10);
            using var difference = (result.States - reference).abs().max();
            worst = Math.Max(worst, difference.ToDouble());
            var defects = string.Join(", ", result.Defects.Select(d => d.ToString("E1")));
            log.WriteLine($"{method,-8}: {result.Iterations} sweeps, {watch.ElapsedMilliseconds} ms, defects [{defects}], " +
                          $"max |B − sequential| = {difference.ToDouble():E2}");
        }
        return worst;
    }
}
