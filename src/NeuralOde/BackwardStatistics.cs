namespace NeuralOde;

/// <summary>Counts of the backward (adjoint) solve; zero until backward() has run, and for autograd.</summary>
/// <param name="FunctionEvaluations">Evaluations of the vector field and its vector-Jacobian products.</param>
/// <param name="AcceptedSteps">Steps accepted by the backward solves.</param>
/// <param name="RejectedSteps">Steps rejected by their error control.</param>
/// <param name="BackwardPasses">Backward passes run through the solution.</param>
public sealed record BackwardStatistics(int FunctionEvaluations, int AcceptedSteps, int RejectedSteps, int BackwardPasses)
{
    internal static BackwardStatistics From(Core.BackwardStatistics s) =>
        new(s.FunctionEvaluations, s.AcceptedSteps, s.RejectedSteps, s.BackwardPasses);
}
