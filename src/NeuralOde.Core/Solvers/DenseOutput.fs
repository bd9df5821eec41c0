/// Evaluating a step's solution between its ends (dense output), so output times never force steps.
module internal NeuralOde.Core.DenseOutputEval

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// y at t0 + θh inside the step (t0, y0) → (t0 + h, y1), 0 < θ < 1. `ks` are the step's stages (ks[0] = f(t0, y0));
/// `f1` is f(t0 + h, y1), needed by Hermite interpolation only.
let evaluate (dense: NeuralOde.Core.DenseOutput) (y0: Tensor) (y1: Tensor) (h: float) (ks: Tensor[]) (f1: Tensor) (theta: float) =
    match dense with
    | NeuralOde.Core.DenseOutput.Continuous weights ->
        let w = weights theta
        TensorOps.combine y0 h w (if w.Length = ks.Length then ks else Array.append ks [| f1 |])
    | NeuralOde.Core.DenseOutput.Hermite ->
        // Cubic Hermite basis on [0, 1] (Hairer, Nørsett & Wanner, Solving ODEs I, §II.6, eq. (6.7)).
        let t2, t3 = theta * theta, theta * theta * theta
        let h00 = 2.0 * t3 - 3.0 * t2 + 1.0
        let h10 = t3 - 2.0 * t2 + theta
        let h01 = -2.0 * t3 + 3.0 * t2
        let h11 = t3 - t2
        use a = TensorOps.scale y0 h00
        use b = TensorOps.addScaled a ks[0] (h * h10)
        use c = TensorOps.addScaled b y1 h01
        TensorOps.addScaled c f1 (h * h11)

/// True when the dense output needs f at the end of the step (Hermite, or an extension with a weight on it), which
/// FSAL methods already have.
let needsEndDerivative (tableau: NeuralOde.Core.ButcherTableau) =
    match tableau.Dense with
    | NeuralOde.Core.DenseOutput.Hermite -> true
    | NeuralOde.Core.DenseOutput.Continuous weights -> (weights 0.5).Length > tableau.Stages
