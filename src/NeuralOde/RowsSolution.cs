using System;
using System.Linq;
using TorchSharp;
using CoreRows = NeuralOde.Core.Rows;

namespace NeuralOde;

/// <summary>How one row (sample) of a batched solve ended.</summary>
/// <param name="Solved">True when the row reached the last output time.</param>
/// <param name="Failure">Why it stopped; null when solved.</param>
/// <param name="FailureTime">Where it stopped; null when solved. Its states after this time are NaN.</param>
public readonly record struct RowStatus(bool Solved, OdeFailure? Failure, double? FailureTime)
{
    internal static RowStatus From(CoreRows.RowStatus status) => status is CoreRows.RowStatus.Failed f
        ? new RowStatus(false, f.failure, f.time)
        : new RowStatus(true, null, null);
}

/// <summary>
/// The solution of every row of a batch, with a status per row (<see cref="Ode.TrySolveRows"/>,
/// <see cref="Ode.TrySolveSpans"/>). A failed row's states are NaN from the first output time it did not reach; every
/// solved row holds exactly what a solve of the solved rows alone gives. Holds native memory: dispose it.
/// </summary>
public sealed class RowsSolution : IDisposable
{
    readonly CoreRows.RowsSolution _solution;
    bool _disposed;

    internal RowsSolution(CoreRows.RowsSolution solution) => _solution = solution;

    /// <summary>The requested output times.</summary>
    public double[] Times => (double[])_solution.Times.Clone();

    /// <summary>Every row's states, shape [Times.Length, ...x0.shape]; NaN where a failed row has no output.</summary>
    public torch.Tensor States => _disposed ? throw new ObjectDisposedException(nameof(RowsSolution)) : _solution.States;

    /// <summary>Each row's status, in the batch's order.</summary>
    public RowStatus[] Rows => _solution.Rows.Select(RowStatus.From).ToArray();

    /// <summary>True when every row was solved.</summary>
    public bool Succeeded => _solution.Succeeded;

    /// <summary>The rows that failed, in order (drop them, or solve them again with other settings).</summary>
    public int[] FailedRows => _solution.FailedRows;

    /// <summary>The solves it took: one, plus one for each round of dropped rows.</summary>
    public int Solves => _solution.Solves;

    /// <summary>The counts of every solve, added up.</summary>
    public SolveStatistics Statistics => SolveStatistics.From(_solution.Statistics);

    /// <summary>One line: the rows solved and failed, and the solves it took.</summary>
    public override string ToString() =>
        $"RowsSolution: {_solution.Rows.Length - FailedRows.Length} of {_solution.Rows.Length} row(s) solved" +
        (FailedRows.Length == 0 ? "" : $"; failed: [{string.Join(", ", FailedRows)}]") + $"; {Solves} solve(s)";

    /// <summary>Frees the states' native memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ((IDisposable)_solution).Dispose();
    }
}
