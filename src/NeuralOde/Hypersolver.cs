using System;
using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// A hypersolver (Poli et al. 2020): a base fixed-step method ψ (Euler, midpoint, RK4, …) plus a learned correction
/// g_ω of its local truncation error, z_{n+1} = z_n + h ψ(t_n, z_n) + h^{p+1} g_ω([z_n, f(t_n, z_n)]), p the base
/// method's order. Train it on a field with <see cref="Train"/>; then a few hypersolver steps reach the accuracy of
/// many base steps. States are batches of vectors [N, d]; the correction maps [N, 2d] to [N, d].
/// </summary>
public sealed class Hypersolver
{
    readonly Core.Hypersolver _solver;

    /// <summary>A hypersolver from a base method and a correction module ([N, 2d] → [N, d]).</summary>
    /// <param name="baseSolver">The base method, e.g. <see cref="Solvers.Euler"/>.</param>
    /// <param name="correction">g_ω: its input is the state and the field's value side by side.</param>
    public Hypersolver(Solver baseSolver, Module<torch.Tensor, torch.Tensor> correction)
    {
        ArgumentNullException.ThrowIfNull(baseSolver);
        ArgumentNullException.ThrowIfNull(correction);
        _solver = new Core.Hypersolver(baseSolver.Tableau, correction);
        Base = baseSolver;
    }

    /// <summary>The base method.</summary>
    public Solver Base { get; }

    /// <summary>The correction g_ω.</summary>
    public Module<torch.Tensor, torch.Tensor> Correction => _solver.Correction;

    /// <summary>The states at the <paramref name="steps"/> + 1 equally spaced times of [t0, t1], [steps + 1, N, d].
    /// Differentiable by autograd.</summary>
    /// <param name="vectorField">f(t, z).</param>
    /// <param name="z0">The initial states [N, d].</param>
    /// <param name="t0">The start.</param>
    /// <param name="t1">The end.</param>
    /// <param name="steps">The number of equal steps.</param>
    /// <exception cref="ArgumentException">A state that is not [N, d], an empty span, steps below 1, or a field or
    /// correction returning the wrong shape.</exception>
    public torch.Tensor Solve(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor z0, double t0, double t1, int steps)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        return _solver.Solve(FuncConvert.FromFunc(vectorField), z0, t0, t1, steps);
    }

    /// <summary>
    /// Fits the correction to the residuals of a reference solve: the trajectories from <paramref name="z0"/> [N, d] on
    /// the <paramref name="steps"/>-interval grid of [t0, t1] are solved once by Dopri5 at rtol = atol =
    /// <paramref name="tolerance"/>, and the correction is fitted to (z(t + h) − z − h ψ)/h^{p+1} by
    /// <paramref name="iterations"/> full-batch Adam steps. Returns the mean squared residual error per iteration.
    /// </summary>
    /// <param name="vectorField">f(t, z).</param>
    /// <param name="z0">The training initial states [N, d].</param>
    /// <param name="t0">The start.</param>
    /// <param name="t1">The end.</param>
    /// <param name="steps">The steps the hypersolver will take over [t0, t1] (the residuals' step size).</param>
    /// <param name="iterations">Adam steps.</param>
    /// <param name="learningRate">Adam's learning rate.</param>
    /// <param name="tolerance">rtol = atol of the Dopri5 reference solve.</param>
    /// <exception cref="ArgumentOutOfRangeException">iterations or steps below 1, or a learning rate that is not positive.</exception>
    public double[] Train(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor z0, double t0, double t1, int steps,
                          int iterations = 500, double learningRate = 3e-3, double tolerance = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        ArgumentNullException.ThrowIfNull(z0);
        return Core.HypersolverModule.train(_solver, FuncConvert.FromFunc(vectorField), z0, t0, t1, steps, iterations, learningRate, tolerance);
    }
}
