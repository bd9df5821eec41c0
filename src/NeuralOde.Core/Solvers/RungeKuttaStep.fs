/// One explicit Runge–Kutta step over any Butcher tableau (Hairer, Nørsett & Wanner, "Solving ODEs I", §II.1), on any
/// state algebra (tensors or host buffers).
module internal NeuralOde.Core.RungeKuttaStep

open NeuralOde.Core.State

/// The result of one step from (t, y) with step h.
type StepResult<'S> =
    { /// The solution at t + h.
      Y1: 'S
      /// The stages k_1 … k_s.
      Ks: 'S[]
      /// The embedded error estimate h Σ e_i k_i, for adaptive tableaux (else null).
      Error: 'S
      /// The order that step-size control takes for this step's error (0: the tableau's ErrorOrder): a step of another
      /// kind may come from another method (the stiffness switcher's).
      Order: int
      /// f(t + h, Y1) when the step evaluated it (a FSAL stage of a step of another kind), else null: the loop then
      /// evaluates it where it needs it.
      F1: 'S }

/// Takes one step (with the error estimate when `withError`: adaptive control). `k1` is f(t, y), already evaluated (the previous step's last stage for FSAL methods).
/// For FSAL tableaux Y1 is the point the last stage was evaluated at, so f(t + h, Y1) = Ks[s−1].
let step (algebra: IStateAlgebra<'S>) (tableau: NeuralOde.Core.ButcherTableau) (withError: bool) (f: float -> 'S -> 'S) (t: float) (y: 'S) (h: float) (k1: 'S) =
    let s = tableau.Stages
    let ks = Array.zeroCreate<'S> s
    ks[0] <- k1
    let mutable y1 = Unchecked.defaultof<'S>
    for i in 1 .. s - 1 do
        let yi = algebra.Combine(y, h, tableau.A[i], ks)
        ks[i] <- f (t + tableau.C[i] * h) yi
        if i = s - 1 && tableau.Fsal then y1 <- yi else algebra.Release yi
    if isNull (box y1) then y1 <- algebra.Combine(y, h, tableau.B, ks)
    let error = match tableau.E with Some e when withError -> algebra.WeightedSum(h, e, ks) | _ -> Unchecked.defaultof<'S>
    { Y1 = y1; Ks = ks; Error = error; Order = 0; F1 = Unchecked.defaultof<'S> }
