using System;
using Microsoft.FSharp.Core;
using TorchSharp;
using CoreShooting = NeuralOde.Core.MultipleShooting;

namespace NeuralOde;

/// <summary>How a multiple-shooting solve updates the boundary states from one sweep to the next (torchdyn's MSZero,
/// MSDirect, MSForward, MSBackward). Every variant converges in at most N sweeps for N segments.</summary>
public enum ShootingMethod
{
    /// <summary>Zeroth order, a parallel Picard sweep b_{k+1} ← φ_k(b_k): one more segment fixed per sweep.</summary>
    Zero,

    /// <summary>Newton with the segment Jacobians formed in full (memory N·D² for D elements per state).</summary>
    Direct,

    /// <summary>Newton with exact Jacobian–vector products through the fine solver, no Jacobian formed.</summary>
    Forward,

    /// <summary>torchdyn's MSBackward: the Newton recursion with the transposed Jacobian's product (reverse mode);
    /// Newton when the segment Jacobians are symmetric, otherwise a quasi-Newton sweep.</summary>
    Backward,
}

/// <summary>The boundary states of a multiple-shooting solve and how the sweeps went. Dispose it to free
/// <see cref="States"/>.</summary>
/// <param name="Times">The segment boundaries τ_0 &lt; … &lt; τ_N.</param>
/// <param name="States">The boundary states b_0 = z0, …, b_N, shape [N + 1, ...z0.shape]; differentiable with
/// respect to z0 and the field's tensors.</param>
/// <param name="Iterations">Sweeps made.</param>
/// <param name="Defects">The largest defect max_k ‖b_{k+1} − φ_k(b_k)‖_∞ of the initial guess (first) and after each
/// sweep.</param>
/// <param name="Converged">True when the last defect is within the tolerance.</param>
public sealed record ShootingResult(double[] Times, torch.Tensor States, int Iterations, double[] Defects, bool Converged) : IDisposable
{
    /// <summary>Frees <see cref="States"/>.</summary>
    public void Dispose() => States.Dispose();
}

/// <summary>
/// Multiple shooting (Massaroli et al., "Differentiable Multiple Shooting Layers", NeurIPS 2021): dz/dt = f(t, z)
/// over segments [τ_k, τ_{k+1}], all integrated at once by a fine solver, with the boundary states found by
/// Newton-type sweeps instead of one segment after another.
/// </summary>
public static class MultipleShooting
{
    /// <summary>
    /// Solves dz/dt = f(t, z) from <paramref name="z0"/> at times[0] by multiple shooting over the segments between
    /// the strictly increasing <paramref name="times"/>.
    /// </summary>
    /// <param name="vectorField">f(t, z): z has z0's shape (the field is called once per segment with that
    /// segment's time); returns dz/dt with z's shape.</param>
    /// <param name="z0">The initial state.</param>
    /// <param name="times">The segment boundaries τ_0 &lt; τ_1 &lt; … &lt; τ_N (at least two).</param>
    /// <param name="method">The sweep; Forward (Newton by Jacobian–vector products) unless given.</param>
    /// <param name="fineSolver">The solver of each segment; RK4 unless given.</param>
    /// <param name="fineSteps">Equal steps of the fine solver per segment.</param>
    /// <param name="maxIterations">The most sweeps.</param>
    /// <param name="tolerance">The sweeps stop when every defect ‖b_{k+1} − φ_k(b_k)‖_∞ is at most this (absolute).</param>
    /// <param name="initialGuess">Boundary states [N + 1, ...z0.shape] to start from (the first is replaced by z0);
    /// null: a coarse sequential solve, one step of the fine solver per segment.</param>
    /// <exception cref="ArgumentException">A bad argument, named: boundaries not strictly increasing, z0 with NaN,
    /// a guess or field output of the wrong shape, a count or tolerance out of range.</exception>
    public static ShootingResult Solve(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor z0, double[] times,
                                       ShootingMethod method = ShootingMethod.Forward, Solver? fineSolver = null, int fineSteps = 4,
                                       int maxIterations = 20, double tolerance = 1e-8, torch.Tensor? initialGuess = null)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        var variant = method switch
        {
            ShootingMethod.Zero => Core.ShootingVariant.Zero,
            ShootingMethod.Direct => Core.ShootingVariant.Direct,
            ShootingMethod.Forward => Core.ShootingVariant.Forward,
            ShootingMethod.Backward => Core.ShootingVariant.Backward,
            _ => throw new ArgumentOutOfRangeException(nameof(method), method, $"Unknown shooting method {method}."),
        };
        var f = FuncConvert.FromFunc<double, torch.Tensor, torch.Tensor>(vectorField);
        var solver = (fineSolver ?? Solvers.Rk4()).Tableau;
        var solution = initialGuess is null
            ? CoreShooting.solve(variant, f, z0, times, solver, fineSteps, maxIterations, tolerance)
            : CoreShooting.solveFrom(initialGuess, variant, f, z0, times, solver, fineSteps, maxIterations, tolerance);
        return new ShootingResult(solution.Times, solution.States, solution.Iterations, solution.Defects, solution.Converged);
    }
}
