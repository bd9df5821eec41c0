using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Hamiltonian neural networks (Greydanus et al. 2019; torchdyn's HNN): a mass-spring H = (q² + p²)/2 learned
/// from (x, ẋ) pairs by a <see cref="HamiltonianField"/> — a scalar network H whose symplectic gradient is the field —
/// and by a plain Neural ODE field trained on the same data for the same steps. Both fit ẋ about equally well; rolled
/// out for many periods, the plain field's energy drifts while the HNN's stays near its start.</summary>
public static class HamiltonianExample
{
    /// <summary>The plain field's largest relative energy error in the last run.</summary>
    public static double PlainDrift { get; private set; }

    /// <summary>Trains both fields; returns the HNN's largest relative error of the true energy over the rollout
    /// (measured: 1.1% over 100 periods in the full mode, where the plain field's reaches 92%; 2.9% against 218% over 30
    /// periods in the quick mode).</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var iterations = quick ? 250 : 400;
        var periods = quick ? 30 : 100;
        // Derivative matching: 256 states in [−1.5, 1.5]², targets ẋ = (p, −q).
        using var generator = new torch.Generator(11);
        using var states = (torch.rand(new long[] { 256, 2 }, dtype: torch.float64, generator: generator) - 0.5) * 3.0;
        using var targets = torch.cat(new[] { states[.., 1..2], -states[.., 0..1] }, 1);

        torch.manual_seed(12);
        using var hnn = new HamiltonianField(1, Mlp(output: 1));
        using var plain = Mlp(output: 2);
        var hnnLoss = Fit(hnn, states, targets, iterations);
        var plainLoss = Fit(plain, states, targets, iterations);
        log.WriteLine($"derivative MSE after {iterations} Adam steps: HNN {hnnLoss:E2}, plain {plainLoss:E2}");

        using var x0 = torch.tensor(new[] { 0.5, 0.0, 1.0, 0.0, 0.0, 1.3 }, dtype: torch.float64).reshape(3, 2);
        var hnnDrift = EnergyDrift(hnn, x0, periods);
        PlainDrift = EnergyDrift(plain, x0, periods);
        log.WriteLine($"largest |E − E0| / E0 over {periods} periods (RK4, step 0.25): HNN {hnnDrift:P2}, plain {PlainDrift:P1}");
        return hnnDrift;
    }

    static Module<torch.Tensor, torch.Tensor> Mlp(long output) =>
        Sequential(Linear(2, 32, dtype: torch.float64), Tanh(), Linear(32, 32, dtype: torch.float64), Tanh(),
                   Linear(32, output, dtype: torch.float64));

    static double Fit(Module<torch.Tensor, torch.Tensor> field, torch.Tensor states, torch.Tensor targets, int iterations)
    {
        using var optimizer = torch.optim.Adam(field.parameters(), 1e-2);
        var last = double.NaN;
        for (var i = 0; i < iterations; i++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = (field.forward(states) - targets).square().mean();
            loss.backward();
            optimizer.step();
            last = loss.ToDouble();
        }
        return last;
    }

    /// <summary>max |E − E0| / E0 of the true energy E = (q² + p²)/2, saved once per period.</summary>
    static double EnergyDrift(Module<torch.Tensor, torch.Tensor> field, torch.Tensor x0, int periods)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var times = Enumerable.Range(0, periods + 1).Select(k => 2 * Math.PI * k).ToArray();
        using var solution = Ode.Solve(field, x0, times, Solvers.Rk4(), StepSize.Fixed(0.25));
        var energy = solution.States.square().sum(2) * 0.5;   // [periods + 1, N]
        return ((energy - energy[0]).abs() / energy[0]).max().ToDouble();
    }
}
