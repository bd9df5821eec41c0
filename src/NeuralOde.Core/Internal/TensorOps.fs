/// Small tensor helpers used in the step loop. Each allocates as few temporaries as it can.
module NeuralOde.Core.Internal.TensorOps

open TorchSharp

type Tensor = torch.Tensor

/// y + h * Σ_j w_j k_j, skipping zero weights; returns a new tensor (never `y` itself), so callers may dispose it.
let combine (y: Tensor) (h: float) (weights: float[]) (ks: Tensor[]) : Tensor =
    let mutable acc: Tensor = null
    for j in 0 .. weights.Length - 1 do
        let w = weights[j]
        if w <> 0.0 then
            let next =
                if isNull acc then y.add(ks[j], alpha = TorchSharp.Scalar.op_Implicit (h * w))
                else acc.add(ks[j], alpha = TorchSharp.Scalar.op_Implicit (h * w))
            if not (isNull acc) then acc.Dispose()
            acc <- next
    if isNull acc then y.clone() else acc

/// h * Σ_j w_j k_j (no base term); used for the embedded error estimate.
let weightedSum (h: float) (weights: float[]) (ks: Tensor[]) : Tensor =
    let mutable acc: Tensor = null
    for j in 0 .. weights.Length - 1 do
        let w = weights[j]
        if w <> 0.0 then
            let next =
                if isNull acc then ks[j].mul(TorchSharp.Scalar.op_Implicit (h * w))
                else acc.add(ks[j], alpha = TorchSharp.Scalar.op_Implicit (h * w))
            if not (isNull acc) then acc.Dispose()
            acc <- next
    if isNull acc then torch.zeros_like ks[0] else acc

/// True when every element is finite (one host synchronisation).
let allFinite (x: Tensor) : bool =
    use finite = torch.isfinite x
    use all = finite.all()
    all.item<bool>()

/// Human-readable shape, e.g. [4, 2].
let shapeText (x: Tensor) = "[" + (x.shape |> Array.map string |> String.concat ", ") + "]"
