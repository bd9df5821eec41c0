namespace NeuralOde.Core

open System
open System.Collections.Generic
open TorchSharp

/// One accepted step, kept when a solve records its steps (for interpolated adjoints): the step from (T, Y0) to
/// (T + H, Y1) with its stages, and f(T + H, Y1) when the dense output needs it (else null).
type internal StepRecord =
    { T: float
      H: float
      Y0: torch.Tensor
      Y1: torch.Tensor
      Ks: torch.Tensor[]
      F1: torch.Tensor }

/// The accepted steps of one solve (Ode.solveDense), evaluated anywhere on the span by the solver's dense output
/// (diffrax's SaveAt(dense=True) and sol.evaluate). Owns the tensors: dispose it.
type DenseTrajectory internal (tableau: ButcherTableau, steps: StepRecord[]) =
    let direction = if steps.Length > 0 && steps[0].H < 0.0 then -1.0 else 1.0

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
        if steps.Length = 0 then raise (InvalidOperationException("The trajectory holds no steps."))
        // The step whose closed interval holds t (binary search on the signed position along the direction).
        let position (s: StepRecord) = (t - s.T) * direction
        let mutable lo, hi = 0, steps.Length - 1
        while lo < hi do
            let mid = (lo + hi + 1) / 2
            if position steps[mid] >= 0.0 then lo <- mid else hi <- mid - 1
        let s = steps[lo]
        let theta = (t - s.T) / s.H
        if theta < -1e-9 || theta > 1.0 + 1e-9 then
            raise (ArgumentOutOfRangeException("t", t, $"t = {t} lies outside the recorded span [{steps[0].T}, {steps[steps.Length - 1].T + steps[steps.Length - 1].H}]."))
        if theta <= 0.0 then s.Y0.alias()
        elif theta >= 1.0 then s.Y1.alias()
        else DenseOutputEval.evaluate tableau.Dense s.Y0 s.Y1 s.H s.Ks s.F1 theta

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
        member _.Dispose() =
            let seen = HashSet<torch.Tensor>(HashIdentity.Reference)
            for s in steps do
                for x in Seq.append [ s.Y0; s.Y1; s.F1 ] s.Ks do
                    if not (isNull x) && seen.Add x then x.Dispose()
