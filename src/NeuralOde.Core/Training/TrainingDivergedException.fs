// In the namespace NeuralOde (as OdeSolveException): C# users catch it with `using NeuralOde;` alone.
namespace NeuralOde

open System

/// Raised when training produces a non-finite number: the loss, a parameter's gradient, or a parameter after the
/// optimizer's step. It says which came first and where, instead of letting the next forward pass fail inside a
/// solve at t = 0.
type TrainingDivergedException(epoch: int, iteration: int, parameter: string, what: string, message: string) =
    inherit ArithmeticException(message)
    /// The epoch (from 1) in which it happened; 0 where the caller keeps no epochs.
    member _.Epoch = epoch
    /// The iteration (optimizer step, from 1, counted over the whole run) in which it happened.
    member _.Iteration = iteration
    /// The parameter's name (as named_parameters gives it), or null when the loss itself was not finite.
    member _.Parameter = parameter
    /// "loss", "gradient" or "parameter".
    member _.What = what
