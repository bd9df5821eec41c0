namespace NeuralOde.Core

open System
open System.Collections.Generic
open TorchSharp

/// The accepted steps of one solve (Ode.solveDense), evaluated anywhere on the span by the solver's dense output
/// (diffrax's SaveAt(dense=True) and sol.evaluate). Owns the tensors: dispose it.
type DenseTrajectory internal (tableau: ButcherTableau, steps: Loop.AcceptedStep<torch.Tensor>[]) =
    member internal _.Steps = steps

    /// Where the recorded span starts (the solve's first time).
    member _.Start = if steps.Length = 0 then nan else steps[0].T

    /// Where it ends (the solve's last time).
    member _.End = if steps.Length = 0 then nan else steps[steps.Length - 1].T + steps[steps.Length - 1].H

    /// Number of accepted steps recorded.
    member _.StepCount = steps.Length

    /// The solution at t, which must lie in the recorded span (between Start and End): x0's shape, dtype and device,
    /// differentiable like the solve's states (autograd through the recorded steps).
    member this.Evaluate(t: float) : torch.Tensor =
        if Double.IsNaN t || Double.IsInfinity t then raise (ArgumentOutOfRangeException("t", t, $"t must be a finite time; got {t}."))
        this.EvaluateWithin t

    /// Evaluate without the finiteness check, for the adjoints' backward solves: a time that became NaN there gives a
    /// NaN state, which the solve reports as a non-finite value at that time.
    member internal _.EvaluateWithin(t: float) : torch.Tensor =
        Steps.evaluate (State.TensorAlgebra.Shared :> State.IStateAlgebra<torch.Tensor>) tableau steps t

    /// The solution at each of `times`, stacked: [times.Length, ...x0.shape].
    member this.Evaluate(times: float[]) : torch.Tensor =
        if isNull times then raise (ArgumentNullException("times"))
        if times.Length = 0 then raise (ArgumentException("times must hold at least one time.", "times"))
        let states = Collections.Generic.List<torch.Tensor>(times.Length)
        try
            for t in times do states.Add(this.Evaluate t)
            torch.stack(states, 0L)
        finally
            for s in states do s.Dispose()

    interface IDisposable with
        member _.Dispose() = Steps.release (State.TensorAlgebra.Shared :> State.IStateAlgebra<torch.Tensor>) steps null
