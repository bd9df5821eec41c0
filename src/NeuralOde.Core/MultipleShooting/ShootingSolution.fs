namespace NeuralOde.Core

open System
open TorchSharp

/// The result of a multiple-shooting solve. Owns `States` (native memory): dispose it, or let a dispose scope do so.
type ShootingSolution =
    { /// The segment boundaries τ_0 < … < τ_N.
      Times: float[]
      /// The boundary states b_0 = z0, b_1, …, b_N, stacked: shape [N + 1, ...z0.shape]. Differentiable with respect
      /// to z0 and the field's tensors when they require grad (by one Newton sweep at the converged states: the
      /// implicit-function-theorem gradient, equal to autograd through the sequential solve).
      States: torch.Tensor
      /// Sweeps made (0 when the initial guess already met the tolerance).
      Iterations: int
      /// The largest defect max_k ‖b_{k+1} − φ_k(b_k)‖_∞ of each iterate: Defects[0] of the initial guess,
      /// Defects[i] after i sweeps.
      Defects: float[]
      /// The defect of every segment, ‖b_{k+1} − φ_k(b_k)‖_∞ for k = 0 … N − 1, of each iterate (as Defects).
      SegmentDefects: float[][]
      /// True when the last defect is within the tolerance.
      Converged: bool }

    /// The state at the last boundary, b_N.
    member s.Final = s.States[s.Times.Length - 1]

    interface IDisposable with
        member s.Dispose() = s.States.Dispose()
