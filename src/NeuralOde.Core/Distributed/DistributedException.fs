// In the namespace NeuralOde (as TrainingDivergedException): C# users catch it with `using NeuralOde;` alone.
namespace NeuralOde

open System

/// A failure of distributed work: MPI could not be loaded or started, a collective operation failed or timed out,
/// or another rank failed (the message names the rank, what it was doing and its error). Every rank of a failed
/// collective raises one, so no rank is left waiting.
type DistributedException(message: string, inner: exn) =
    inherit Exception(message, inner)
    /// A failure described by `message`.
    new(message: string) = DistributedException(message, null)
