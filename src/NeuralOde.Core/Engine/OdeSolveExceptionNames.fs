namespace NeuralOde.Core

/// The failure kinds and exception of a solve under their F# names in NeuralOde.Core (the types live in the namespace
/// NeuralOde, where C# users find them with `using NeuralOde;`).
type OdeFailure = NeuralOde.OdeFailure

/// Raised when a solve fails part-way (see NeuralOde.OdeSolveException).
type OdeSolveException = NeuralOde.OdeSolveException
