using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Geometric integration (torchdyn's family): leapfrog and Yoshida's fourth-order method keep a harmonic
/// oscillator's energy bounded over a long horizon where RK4 with the same step loses it; a Lagrangian field built
/// from L(q, q̇) = (q̇² − q²)/2 gives the Euler–Lagrange accelerations q̈ = −q; and the asynchronous leapfrog (one
/// evaluation per step, invertible) integrates a general field.</summary>
public static class SymplecticExample
{
    /// <summary>Runs the three; returns leapfrog's largest relative energy error.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var steps = quick ? 10_000 : 100_000;
        using var q0 = torch.tensor(new[] { 1.0 }, dtype: torch.float64);
        using var p0 = torch.tensor(new[] { 0.0 }, dtype: torch.float64);
        double EnergyError(torch.Tensor q, torch.Tensor p)
        {
            using var e = (q.square() + p.square()) * 0.5;
            using var d = (e - 0.5).abs().max();
            return d.ToDouble() / 0.5;
        }
        var (ql, pl) = Symplectic.Solve(Symplectic.Leapfrog(), q => -q, q0, p0, dt: 0.5, steps: steps, saveEvery: 100);
        var leapfrog = EnergyError(ql, pl);
        var (qy, py) = Symplectic.Solve(Symplectic.Yoshida4(), q => -q, q0, p0, dt: 0.5, steps: steps, saveEvery: 100);
        var yoshida = EnergyError(qy, py);
        using var x0 = torch.tensor(new[] { 1.0, 0.0 }, dtype: torch.float64);
        using var rotation = torch.tensor(new[,] { { 0.0, -1.0 }, { 1.0, 0.0 } }, dtype: torch.float64);
        using var rk4 = Ode.Solve((t, x) => x.matmul(rotation), x0, new[] { 0.0, 0.5 * steps }, Solvers.Rk4(), StepSize.Steps(steps));
        var rk4Error = EnergyError(rk4.Final[0], rk4.Final[1]);
        log.WriteLine($"harmonic oscillator, {steps} steps of 0.5: largest |E − E0| / E0 leapfrog {leapfrog:P2}, Yoshida4 {yoshida:P2}; RK4 ends {rk4Error:P1} off");

        using var lnn = new LagrangianField(1, new SpringLagrangian());
        using var x = torch.tensor(new[,] { { 0.7, 0.2 }, { -1.3, 0.5 } }, dtype: torch.float64);
        using var field = lnn.forward(x);
        log.WriteLine($"Lagrangian field of (q̇² − q²)/2 at (q, q̇) = (0.7, 0.2), (−1.3, 0.5): (q̇, q̈) = {string.Join("; ", Enumerable.Range(0, 2).Select(i => $"({field[i, 0].ToDouble():F2}, {field[i, 1].ToDouble():F2})"))}");

        using var z0 = torch.tensor(new[] { 1.0, 0.5 }, dtype: torch.float64);
        Func<double, torch.Tensor, torch.Tensor> general = (t, z) => torch.tanh(z.flip(0)) - 0.1 * z;
        var (path, velocity) = Symplectic.SolveAsynchronousLeapfrog(general, z0, 0.0, 2.0, steps: 100);
        using var _path = path;
        using var _velocity = velocity;
        log.WriteLine($"asynchronous leapfrog on a general field: 100 steps to t = 2 reach ({path[100][0].ToDouble():F4}, {path[100][1].ToDouble():F4})");
        return leapfrog;
    }

    /// <summary>L(q, q̇) = (q̇² − q²)/2 on states [N, 2], as a module: a spring's Lagrangian, written by hand.</summary>
    sealed class SpringLagrangian : Module<torch.Tensor, torch.Tensor>
    {
        public SpringLagrangian() : base("spring") { }

        public override torch.Tensor forward(torch.Tensor x) => (x[.., 1].square() - x[.., 0].square()) * 0.5;
    }
}
