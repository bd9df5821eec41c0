namespace NeuralOde.Core

open TorchSharp
open NeuralOde.Core.Internal

/// A vector field f(t, x): the time and the batched state (a tensor of any shape) give dx/dt, a tensor of the same
/// shape, dtype and device as x.
type VectorField = float -> torch.Tensor -> torch.Tensor

/// An initial value problem dx/dt = f(t, x), x(times[0]) = x0, whose solution is wanted at every point of `Times`.
/// It is data only: how it is solved (solver, step control, sensitivity) is chosen when it is solved.
type OdeProblem =
    { /// The vector field f(t, x).
      VectorField: VectorField
      /// The initial state at Times[0]; its dtype and device decide those of the whole solve.
      X0: torch.Tensor
      /// Output times, strictly monotone; Times[0] is the start, the last is the end. Decreasing means backward in time.
      Times: float[] }

    /// The start time.
    member p.T0 = p.Times[0]
    /// The end time.
    member p.T1 = p.Times[p.Times.Length - 1]
    /// +1.0 when integrating forward in time, -1.0 backward.
    member p.Direction = if p.T1 > p.T0 then 1.0 else -1.0

module OdeProblem =
    /// Builds a problem, checking the time grid and the initial state (a floating-point tensor).
    let create (f: VectorField) (x0: torch.Tensor) (times: float[]) : OdeProblem =
        if isNull (box f) then raise (System.ArgumentNullException("f"))
        if isNull x0 then raise (System.ArgumentNullException("x0"))
        Guard.timeGrid "times" times |> ignore
        if not (torch.is_floating_point x0) then
            raise (System.ArgumentException($"x0 must be a floating-point tensor (float32 or float64); got dtype {x0.dtype}.", "x0"))
        { VectorField = f; X0 = x0; Times = Array.copy times }

    /// A problem on the span [t0, t1] with outputs at its two ends.
    let onSpan (f: VectorField) (x0: torch.Tensor) (t0: float) (t1: float) = create f x0 [| t0; t1 |]
