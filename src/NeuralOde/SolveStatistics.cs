namespace NeuralOde;

/// <summary>Counts gathered during one solve.</summary>
/// <param name="FunctionEvaluations">Evaluations of the vector field.</param>
/// <param name="AcceptedSteps">Steps accepted.</param>
/// <param name="RejectedSteps">Steps rejected by error control.</param>
public sealed record SolveStatistics(int FunctionEvaluations, int AcceptedSteps, int RejectedSteps)
{
    internal static SolveStatistics From(Core.SolveStatistics s) =>
        new(s.FunctionEvaluations, s.AcceptedSteps, s.RejectedSteps);
}
