// In the namespace NeuralOde (as OdeSolveException): C# users read it with `using NeuralOde;` alone; F# code uses the
// abbreviation NeuralOde.Core.TrainingOutcome.
namespace NeuralOde

/// Why training ended.
type TrainingOutcome =
    /// Every epoch ran.
    | Completed = 0
    /// The validation (or, without one, the epoch's training) loss did not improve for `patience` epochs.
    | EarlyStopped = 1
    /// A callback returned false.
    | StoppedByCallback = 2
