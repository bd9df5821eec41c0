/// Hairer's heuristic for the first step (Hairer, Nørsett & Wanner, "Solving ODEs I", §II.4, "Starting step size").
/// Costs one extra evaluation of f.
module internal NeuralOde.Core.InitialStep

open TorchSharp

/// A first step size (positive; the caller applies the direction). `f0` = f(t0, y0).
let select (f: float -> torch.Tensor -> torch.Tensor) (t0: float) (y0: torch.Tensor) (f0: torch.Tensor)
           (direction: float) (order: int) (rtol: float) (atol: float) (span: float) =
    use _ = torch.NewDisposeScope()
    use _ = torch.no_grad()
    let scale = Internal.TensorOps.addConstant (Internal.TensorOps.scale (y0.abs()) rtol) atol
    let d0 = ErrorNorm.rmsScaled y0 scale
    let d1 = ErrorNorm.rmsScaled f0 scale
    let h0 = if d0 < 1e-5 || d1 < 1e-5 then 1e-6 else 0.01 * d0 / d1
    let h0 = min h0 span
    let y1 = Internal.TensorOps.addScaled y0 f0 (direction * h0)
    let f1 = f (t0 + direction * h0) y1
    let d2 = ErrorNorm.rmsScaled (f1.sub(f0)) scale / h0
    let h1 =
        if max d1 d2 <= 1e-15 then max 1e-6 (h0 * 1e-3)
        else (0.01 / max d1 d2) ** (1.0 / float (order + 1))
    min (min (100.0 * h0) h1) span
