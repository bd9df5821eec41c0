using System;
using TorchSharp;

namespace NeuralOde;

/// <summary>The solution of an ODE at the requested times. Holds native memory: dispose it.</summary>
public sealed class OdeSolution : IDisposable
{
    readonly Core.OdeSolution _solution;
    bool _disposed;

    internal OdeSolution(Core.OdeSolution solution) => _solution = solution;

    Core.OdeSolution Live => _disposed ? throw new ObjectDisposedException(nameof(OdeSolution), "The solution has been disposed: its states' native memory is gone.") : _solution;

    /// <summary>The requested output times.</summary>
    public double[] Times => (double[])_solution.Times.Clone();

    /// <summary>The states at <see cref="Times"/>, stacked: shape [Times.Length, ...x0.shape].</summary>
    public torch.Tensor States => Live.States;

    /// <summary>The state at the last output time (a view of <see cref="States"/>).</summary>
    public torch.Tensor Final => Live.Final;

    /// <summary>∫ l(t, x(t)) dt over the span when an integral loss was given (a 0-dim tensor), else null.</summary>
    public torch.Tensor? Integral => Live.Integral is { } integral ? integral.Value : null;

    /// <summary>Counts of the forward solve.</summary>
    public SolveStatistics Statistics => SolveStatistics.From(_solution.Statistics);

    /// <summary>Counts of the backward solve (adjoint sensitivities), read after backward() has run.</summary>
    public BackwardStatistics BackwardStatistics => BackwardStatistics.From(_solution.Backward);

    /// <summary>True when every output time was reached. A solve by <see cref="Ode.TrySolve"/> that stopped early is
    /// false: <see cref="Times"/> and <see cref="States"/> then end at the last output reached.</summary>
    public bool Succeeded => _solution.Status.IsSucceeded;

    /// <summary>Why a solve by <see cref="Ode.TrySolve"/> stopped early; null when it succeeded.</summary>
    public OdeFailure? Failure => _solution.Status is Core.SolveStatus.Failed f ? f.failure : null;

    /// <summary>The time at which a solve by <see cref="Ode.TrySolve"/> stopped; null when it succeeded.</summary>
    public double? FailureTime => _solution.Status is Core.SolveStatus.Failed f ? f.time : null;

    /// <summary>What happened and what to try, when a solve by <see cref="Ode.TrySolve"/> stopped early.</summary>
    public string? FailureMessage => _solution.Status is Core.SolveStatus.Failed f ? f.message : null;

    /// <summary>When a solve by <see cref="Ode.TrySolve"/> stopped early: the rows of the batch (indices along x0's
    /// first dimension) the failure is attributed to — those whose state or field went NaN or Inf, else those whose
    /// error drove the step size down. Empty when it succeeded or no row could be singled out.
    /// <see cref="Ode.TrySolveRows"/> drops them and solves the rest again.</summary>
    public int[] FailedRows => (int[])_solution.FailedRows.Clone();

    /// <summary>One line: the times, the states' shape and dtype, the statistics and, for a partial solve, the failure.</summary>
    public override string ToString()
    {
        if (_disposed) return "OdeSolution (disposed)";
        var times = _solution.Times;
        var span = times.Length == 0 ? "no times" : $"{times.Length} time(s) from {times[0]} to {times[^1]}";
        var states = $"states [{string.Join(", ", _solution.States.shape)}] {_solution.States.dtype}";
        var status = Succeeded ? "" : $"; stopped: {Failure} at t = {FailureTime}";
        var stats = Statistics;
        return $"OdeSolution: {span}, {states}, {stats.FunctionEvaluations} evaluations in {stats.AcceptedSteps} steps ({stats.RejectedSteps} rejected){status}";
    }

    /// <summary>Frees the states' native memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ((IDisposable)_solution).Dispose();
    }
}
