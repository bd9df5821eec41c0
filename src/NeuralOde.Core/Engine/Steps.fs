/// Accepted steps kept by a run of the loop (Loop.Settings.Observer), evaluated anywhere on their span by the
/// solver's dense output: the trajectory of Ode.solveDense and the interpolated adjoint's forward solution.
module internal NeuralOde.Core.Steps

open System
open NeuralOde.Core.State
open NeuralOde.Core.Loop

/// The step whose closed interval holds t (the first or the last when t lies outside the span), and t's position θ
/// in it ((t − T)/H).
let private locate (steps: AcceptedStep<'S>[]) (t: float) =
    if steps.Length = 0 then raise (InvalidOperationException("The trajectory holds no steps."))
    let direction = if steps[0].H < 0.0 then -1.0 else 1.0
    // Binary search on the signed position along the direction.
    let position (s: AcceptedStep<'S>) = (t - s.T) * direction
    let mutable lo, hi = 0, steps.Length - 1
    while lo < hi do
        let mid = (lo + hi + 1) / 2
        if position steps[mid] >= 0.0 then lo <- mid else hi <- mid - 1
    let s = steps[lo]
    s, (t - s.T) / s.H

/// The solution at t (a new state): the step whose closed interval holds t, by dense output inside it. A t outside
/// the span by more than rounding raises; NaN gives the last step's dense output at NaN (a NaN state).
let evaluate (algebra: IStateAlgebra<'S>) (tableau: ButcherTableau) (steps: AcceptedStep<'S>[]) (t: float) : 'S =
    let s, theta = locate steps t
    if theta < -1e-9 || theta > 1.0 + 1e-9 then
        let last = steps[steps.Length - 1]
        raise (ArgumentOutOfRangeException("t", t, $"t = {t} lies outside the recorded span [{steps[0].T}, {last.T + last.H}]."))
    if theta <= 0.0 then algebra.Copy s.Y0
    elif theta >= 1.0 then algebra.Copy s.Y1
    else DenseOutputEval.evaluate algebra tableau.Dense s.Y0 s.Y1 s.H s.Ks s.F1 theta

/// The solution at t like `evaluate`, and past either end of the span by the end step's dense output (its
/// polynomial continued): for methods whose stages lie beyond the step (Kvaerno5's third node is 1.23), whose last
/// step then reads the solution a little past the span's end.
let evaluateExtended (algebra: IStateAlgebra<'S>) (tableau: ButcherTableau) (steps: AcceptedStep<'S>[]) (t: float) : 'S =
    let s, theta = locate steps t
    if theta = 0.0 then algebra.Copy s.Y0
    elif theta = 1.0 then algebra.Copy s.Y1
    else DenseOutputEval.evaluate algebra tableau.Dense s.Y0 s.Y1 s.H s.Ks s.F1 theta

/// Releases every state the steps hold (each once), except `borrowed` (the run's y0).
let release (algebra: IStateAlgebra<'S>) (steps: seq<AcceptedStep<'S>>) (borrowed: 'S) =
    let seen = Collections.Generic.HashSet<obj>(HashIdentity.Reference)
    seen.Add(box borrowed) |> ignore
    for s in steps do
        for x in Seq.append [ s.Y0; s.Y1; s.F1 ] s.Ks do
            if not (isNull (box x)) && seen.Add(box x) then algebra.Release x
