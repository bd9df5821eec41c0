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

    internal static SolveStatistics From(Core.SolveStatistics s) =>
        new(s.FunctionEvaluations, s.AcceptedSteps, s.RejectedSteps) { Backend = s.Backend ?? "module" };
}
