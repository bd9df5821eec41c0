namespace NeuralOde;

/// <summary>Counts gathered during one solve.</summary>
/// <param name="FunctionEvaluations">Evaluations of the vector field.</param>
/// <param name="AcceptedSteps">Steps accepted.</param>
/// <param name="RejectedSteps">Steps rejected by error control.</param>
public sealed record SolveStatistics(int FunctionEvaluations, int AcceptedSteps, int RejectedSteps)
{
    /// <summary>What evaluated the field: <c>"module"</c> (the field called on tensors) or a compiled backend's name
    /// (<c>"compiled MLP"</c>); when a backend was attached but could not run, <c>"module: "</c> and the reason.</summary>
    public string Backend { get; init; } = "module";

    /// <summary>Where the stiffness switcher (<see cref="Solvers.AutoSwitch"/>) handed the solve to its other method,
    /// in order; empty for every other solver.</summary>
    public System.Collections.Generic.IReadOnlyList<SolverSwitch> Switches { get; init; } = System.Array.Empty<SolverSwitch>();

    /// <summary>Equal counts (whatever backend ran them): a compiled solve and the module's take the same steps.</summary>
    public bool Equals(SolveStatistics? other) =>
        other is not null && FunctionEvaluations == other.FunctionEvaluations && AcceptedSteps == other.AcceptedSteps
        && RejectedSteps == other.RejectedSteps;

    /// <summary>A hash of the counts.</summary>
    public override int GetHashCode() => System.HashCode.Combine(FunctionEvaluations, AcceptedSteps, RejectedSteps);

    internal static SolveStatistics From(Core.SolveStatistics s) =>
        new(s.FunctionEvaluations, s.AcceptedSteps, s.RejectedSteps)
        {
            Backend = s.Backend ?? "module",
            Switches = System.Array.ConvertAll(s.Switches ?? System.Array.Empty<Core.SolverSwitch>(), w => new SolverSwitch(w.Time, w.Solver))
        };
}

/// <summary>A point where the stiffness switcher handed the solve to its other method.</summary>
/// <param name="Time">The time from which the new method steps.</param>
/// <param name="Solver">The name of the method that took over.</param>
public sealed record SolverSwitch(double Time, string Solver);
