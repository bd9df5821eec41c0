namespace NeuralOde.Core

open TorchSharp

/// The shared enum (NeuralOde.EventDirection).
type EventDirection = NeuralOde.EventDirection

/// An event: a condition g(t, x) whose zero crossings (in `Direction`) are located on the solver's dense output, and
/// what happens there. `Condition` takes t as a 0-dim tensor of the state's dtype (so that ∂g/∂t comes by autograd)
/// and returns a 0-dim tensor; it may depend on parameters (their gradients flow). A `Terminal` event ends the solve
/// at its time; otherwise the solve goes on from the event, with the state replaced by `Update (t*, x*)` when given
/// (a bounce: v ← −e·v; differentiable).
type OdeEvent =
    { /// g(t, x), a 0-dim tensor; the event is a zero crossing of it.
      Condition: torch.Tensor -> torch.Tensor -> torch.Tensor
      /// Which crossings count.
      Direction: EventDirection
      /// End the solve at the event.
      Terminal: bool
      /// The state after the event, from (t*, x*) (non-terminal events only); None: the state goes on unchanged.
      Update: (torch.Tensor -> torch.Tensor -> torch.Tensor) option
      /// A name for reports and errors.
      Name: string }

/// One event that happened.
type EventOccurrence =
    { /// Which event (its index in the list given to the solve).
      Index: int
      /// Its name.
      Name: string
      /// The event time t*, a 0-dim tensor: differentiable (the implicit-function-theorem gradient: dt*/dθ =
      /// −(∂g/∂x·dx/dθ + ∂g/∂θ) / (∂g/∂t + ∂g/∂x·f)).
      Time: torch.Tensor
      /// The state x(t*) before any update, differentiable (its total derivative, including through t*).
      State: torch.Tensor }

/// The result of a solve with events.
type EventSolution =
    { /// The output times reached (all of them, unless a terminal event came first).
      Times: float[]
      /// The states at Times, stacked ([Times.Length, ...x0.shape]).
      States: torch.Tensor
      /// The events in the order they happened.
      Events: EventOccurrence list
      /// True when a terminal event ended the solve.
      Terminated: bool
      /// The state at the end: at the terminal event, or at the last output time (after any update there).
      Final: torch.Tensor
      /// Function evaluations and steps of every solve the run made: locating passes and differentiable passes.
      Statistics: SolveStatistics }
