/// Hairer's heuristic for the first step (Hairer, Nørsett & Wanner, "Solving ODEs I", §II.4, "Starting step size"), on
/// any state algebra. Costs one extra evaluation of f.
module internal NeuralOde.Core.InitialStep

open TorchSharp
open NeuralOde.Core.State

/// A first step size (positive; the caller applies the direction). `f0` = f(t0, y0).
let select (algebra: IStateAlgebra<'S>) (f: float -> 'S -> 'S) (t0: float) (y0: 'S) (f0: 'S)
           (direction: float) (order: int) (rtol: float) (atol: float) (span: float) =
    // Only numbers come out: no graph, and what f leaves behind is freed with the scope.
    use _ = torch.no_grad()
    use _ = algebra.Scope()
    let d0 = algebra.RmsScaled(y0, Unchecked.defaultof<'S>, y0, rtol, atol)
    let d1 = algebra.RmsScaled(f0, Unchecked.defaultof<'S>, y0, rtol, atol)
    let h0 = if d0 < 1e-5 || d1 < 1e-5 then 1e-6 else 0.01 * d0 / d1
    let h0 = min h0 span
    let y1 = algebra.Combine(y0, direction * h0, [| 1.0 |], [| f0 |])
    let f1 = f (t0 + direction * h0) y1
    let d2 = algebra.RmsScaled(f1, f0, y0, rtol, atol) / h0
    algebra.Release f1
    algebra.Release y1
    let h1 =
        if max d1 d2 <= 1e-15 then max 1e-6 (h0 * 1e-3)
        else (0.01 / max d1 d2) ** (1.0 / float (order + 1))
    min (min (100.0 * h0) h1) span
