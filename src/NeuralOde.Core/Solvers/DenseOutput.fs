/// Evaluating a step's solution between its ends (dense output), so output times never force steps; on any state
/// algebra.
module internal NeuralOde.Core.DenseOutputEval

open NeuralOde.Core.State

/// y at t0 + θh inside the step (t0, y0) → (t0 + h, y1), 0 < θ < 1 (a new state). `ks` are the step's stages
/// (ks[0] = f(t0, y0)); `f1` is f(t0 + h, y1), needed by Hermite interpolation (and extensions that weigh it) only.
let evaluate (algebra: IStateAlgebra<'S>) (dense: NeuralOde.Core.DenseOutput) (y0: 'S) (y1: 'S) (h: float) (ks: 'S[]) (f1: 'S) (theta: float) : 'S =
    match dense with
    | NeuralOde.Core.DenseOutput.Continuous weights ->
        let w = weights theta
        algebra.Combine(y0, h, w, (if w.Length = ks.Length then ks else Array.append ks [| f1 |]))
    | NeuralOde.Core.DenseOutput.Hermite ->
        // Cubic Hermite basis on [0, 1] (Hairer, Nørsett & Wanner, Solving ODEs I, §II.6, eq. (6.7)).
        let t2, t3 = theta * theta, theta * theta * theta
        let h00 = 2.0 * t3 - 3.0 * t2 + 1.0
        let h10 = t3 - 2.0 * t2 + theta
        let h01 = -2.0 * t3 + 3.0 * t2
        let h11 = t3 - t2
        algebra.Linear([| h00; h * h10; h01; h * h11 |], [| y0; ks[0]; y1; f1 |])

/// True when the dense output needs f at the end of the step (Hermite, or an extension with a weight on it), which
/// FSAL methods already have.
let needsEndDerivative (tableau: NeuralOde.Core.ButcherTableau) =
    match tableau.Dense with
    | NeuralOde.Core.DenseOutput.Hermite -> true
    | NeuralOde.Core.DenseOutput.Continuous weights -> (weights 0.5).Length > tableau.Stages
