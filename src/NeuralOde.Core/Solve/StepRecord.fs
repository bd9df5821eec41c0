namespace NeuralOde.Core

open System
open System.Collections.Generic
open TorchSharp

/// One accepted step, kept when a solve records its steps (for interpolated adjoints): the step from (T, Y0) to
/// (T + H, Y1) with its stages, and f(T + H, Y1) when the dense output needs it (else null).
type StepRecord =
    { T: float
      H: float
      Y0: torch.Tensor
      Y1: torch.Tensor
      Ks: torch.Tensor[]
      F1: torch.Tensor }

/// The recorded steps of one solve, in the order taken; evaluates the solution anywhere on the span by the solver's
/// dense output. Owns the tensors (consecutive steps share some): dispose it.
type DenseTrajectory(tableau: ButcherTableau, steps: StepRecord[]) =
    let direction = if steps.Length > 0 && steps[0].H < 0.0 then -1.0 else 1.0

    /// The recorded steps.
    member _.Steps = steps

    /// The solution at t, which must lie in the recorded span.
    member _.Evaluate(t: float) : torch.Tensor =
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

    interface IDisposable with
        member _.Dispose() =
            let seen = HashSet<torch.Tensor>(HashIdentity.Reference)
            for s in steps do
                for x in Seq.append [ s.Y0; s.Y1; s.F1 ] s.Ks do
                    if not (isNull x) && seen.Add x then x.Dispose()
