using System;
using TorchSharp;

namespace NeuralOde;

/// <summary>
/// A solve that kept every accepted step (<see cref="Ode.SolveDense"/>): the solution can be evaluated at any time
/// of the span afterwards by the solver's dense output, as diffrax's <c>SaveAt(dense=True)</c> with
/// <c>sol.evaluate(t)</c>. Evaluations are differentiable by autograd. Holds every step's stages: dispose it.
/// </summary>
public sealed class DenseSolution : IDisposable
{
    readonly Core.DenseTrajectory _trajectory;
    bool _disposed;

    internal DenseSolution(Core.OdeSolution solution, Core.DenseTrajectory trajectory)
    {
        Solution = new OdeSolution(solution);
        _trajectory = trajectory;
    }

    Core.DenseTrajectory Live => _disposed ? throw new ObjectDisposedException(nameof(DenseSolution), "The dense solution has been disposed: its steps' native memory is gone.") : _trajectory;

    /// <summary>The states at the requested output times, as an ordinary solve returns them.</summary>
    public OdeSolution Solution { get; }

    /// <summary>Where the span starts.</summary>
    public double Start => Live.Start;

    /// <summary>Where the span ends.</summary>
    public double End => Live.End;

    /// <summary>Accepted steps recorded.</summary>
    public int StepCount => Live.StepCount;

    /// <summary>The solution at <paramref name="t"/> (between <see cref="Start"/> and <see cref="End"/>), x0's shape.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="t"/> lies outside the span or is not finite.</exception>
    public torch.Tensor Evaluate(double t) => Live.Evaluate(t);

    /// <summary>The solution at each of <paramref name="times"/>, stacked: [times.Length, ...x0.shape].</summary>
    public torch.Tensor Evaluate(double[] times) => Live.Evaluate(times);

    /// <summary>Frees the steps and the solution.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ((IDisposable)_trajectory).Dispose();
        Solution.Dispose();
    }
}
