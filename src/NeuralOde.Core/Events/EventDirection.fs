// In the namespace NeuralOde (as TrainingOutcome): C# users name it with `using NeuralOde;` alone; F# code uses the
// abbreviation NeuralOde.Core.EventDirection.
namespace NeuralOde

/// Which crossings of g(t, x) = 0 fire an event.
type EventDirection =
    /// Any sign change of g.
    | Either = 0
    /// g going from negative to zero or positive.
    | Rising = 1
    /// g going from positive to zero or negative.
    | Falling = 2
