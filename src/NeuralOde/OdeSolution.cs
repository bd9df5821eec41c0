using System;
using TorchSharp;

namespace NeuralOde;

/// <summary>The solution of an ODE at the requested times. Holds native memory: dispose it.</summary>
public sealed class OdeSolution : IDisposable
{
    readonly Core.OdeSolution _solution;

    internal OdeSolution(Core.OdeSolution solution) => _solution = solution;

    /// <summary>The requested output times.</summary>
    public double[] Times => (double[])_solution.Times.Clone();

    /// <summary>The states at <see cref="Times"/>, stacked: shape [Times.Length, ...x0.shape].</summary>
    public torch.Tensor States => _solution.States;

    /// <summary>The state at the last output time (a view of <see cref="States"/>).</summary>
    public torch.Tensor Final => _solution.Final;

    /// <summary>∫ l(t, x(t)) dt over the span when an integral loss was given (a 0-dim tensor), else null.</summary>
    public torch.Tensor? Integral => _solution.Integral is { } integral ? integral.Value : null;

    /// <summary>Counts of the forward solve.</summary>
    public SolveStatistics Statistics => SolveStatistics.From(_solution.Statistics);

    /// <summary>Counts of the backward solve (adjoint sensitivities), read after backward() has run.</summary>
    public BackwardStatistics BackwardStatistics => BackwardStatistics.From(_solution.Backward);

    /// <summary>Frees the states' native memory.</summary>
    public void Dispose() => ((IDisposable)_solution).Dispose();
}
