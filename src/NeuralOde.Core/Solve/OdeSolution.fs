namespace NeuralOde.Core

open System
open TorchSharp

/// Counts gathered during one solve.
type SolveStatistics =
    { /// Evaluations of the vector field (including the first-step heuristic's).
      FunctionEvaluations: int
      /// Steps accepted.
      AcceptedSteps: int
      /// Steps rejected by error control.
      RejectedSteps: int }

    override s.ToString() =
        $"nfe={s.FunctionEvaluations} accepted={s.AcceptedSteps} rejected={s.RejectedSteps}"

/// The solution at the requested times. Owns `States` (native memory): dispose it, or let a dispose scope do so.
type OdeSolution =
    { /// The requested output times.
      Times: float[]
      /// The states, stacked: shape [Times.Length; ...x0.shape].
      States: torch.Tensor
      /// Counts of this solve.
      Statistics: SolveStatistics }

    /// The state at the last output time.
    member s.Final = s.States[s.Times.Length - 1]

    interface IDisposable with
        member s.Dispose() = s.States.Dispose()
