// In the namespace NeuralOde, not NeuralOde.Core: C# users catch these with `using NeuralOde;` alone (the facade's
// namespace), and F# code in NeuralOde.Core sees them as the enclosing namespace's.
namespace NeuralOde

open System

/// Why a solve stopped before reaching its final time. Each message says what happened and what to try.
type OdeFailure =
    /// The step size fell below what the time's floating-point resolution allows.
    | StepSizeUnderflow = 1
    /// The step budget (AdaptiveOptions.MaxSteps) ran out.
    | MaxStepsExceeded = 2
    /// The state or the vector field's output held NaN or Inf.
    | NonFiniteValue = 3
    /// The vector field returned a tensor whose shape, dtype or device differs from the state's.
    | VectorFieldMismatch = 4
    /// The step-size controller produced a step that is NaN or infinite (e.g. the initial-step heuristic on an
    /// overflowing state).
    | InvalidStepSize = 5
    /// The vector field (or the running loss) raised an exception; it is the inner exception.
    | VectorFieldFailed = 6
    /// An implicit solver's Newton iteration did not converge, with a fresh Jacobian, at ever smaller steps.
    | NewtonDivergence = 7
    /// An implicit solver's Newton matrix I − hγ·∂f/∂y (a Rosenbrock solver's (1/(hγ)) I − ∂f/∂y) was singular (or not
    /// finite) at ever smaller steps.
    | SingularMatrix = 8

/// Raised when a solve fails part-way. `Time` is where it happened.
type OdeSolveException(failure: OdeFailure, time: float, message: string, inner: exn) =
    inherit Exception(message, inner)
    /// An exception with no inner exception.
    new(failure, time, message) = OdeSolveException(failure, time, message, null)
    /// What went wrong.
    member _.Failure = failure
    /// The time at which it went wrong.
    member _.Time = time

    /// The exception for a vector field (or running loss) that raised `inner` at time t.
    static member internal FieldFailed(t: float, inner: exn) =
        let first = inner.Message.Split('\n').[0]
        OdeSolveException(OdeFailure.VectorFieldFailed, t, $"The vector field raised {inner.GetType().Name} at t = {t}: {first}", inner)

    /// Runs a call of the vector field (or running loss) at time t: what it raises comes out as FieldFailed with
    /// the time (an OdeSolveException as itself).
    static member internal Calling(t: float, call: unit -> 'a) : 'a =
        try call ()
        with
        | :? OdeSolveException -> reraise ()
        | e -> raise (OdeSolveException.FieldFailed(t, e))
