/// Small tensor helpers used in the step loop. Each allocates as few temporaries as it can.
module internal NeuralOde.Core.Internal.TensorOps

open TorchSharp

type Tensor = torch.Tensor

// TorchSharp Scalars own native memory that only their finaliser frees when they are not disposed; created per step,
// they made the process grow ~135 KB per RK4 step between garbage collections (measured: flat once disposed). So
// every Scalar made in a loop goes through these helpers, which dispose it.
//
// TorchSharp's one-argument `add(Tensor)`, `add(Scalar)`, `add_(Tensor)` and the operator `+` between tensors make a
// temporary Scalar alpha = 1 and pass its handle without keeping the Scalar alive: the finaliser thread may free it
// while libtorch still reads it, and the add then fails ("Expected false to be true ... toDouble", Scalar.h) or reads
// garbage. Seen in the adjoint's backward under GC pressure. So the core never calls those overloads: `plus` passes
// an alpha that lives as long as the process.

/// alpha = 1, never freed (read-only, shared by every thread).
let private one = Scalar.op_Implicit 1.0

/// The same alpha = 1 for callers of TorchSharp's two-argument overloads.
let oneScalar = one

/// a + b (a new tensor), without TorchSharp's temporary alpha.
let plus (a: Tensor) (b: Tensor) : Tensor = a.add(b, one)

/// a + c for a Scalar c the caller keeps alive (a new tensor), without TorchSharp's temporary alpha.
let addScalar (a: Tensor) (c: Scalar) : Tensor = a.add(c, one)

/// a + alpha·b (a new tensor).
let addScaled (a: Tensor) (b: Tensor) (alpha: float) : Tensor =
    use s = Scalar.op_Implicit alpha
    a.add(b, alpha = s)

/// a += alpha·b in place; returns a. Only for tensors this library made and no graph saved (a fresh accumulator):
/// autograd allows in-place addition there, and it saves an allocation and a tensor handle per term.
let addScaledInPlace (a: Tensor) (b: Tensor) (alpha: float) : Tensor =
    use s = Scalar.op_Implicit alpha
    a.add_(b, alpha = s)

/// c·a (a new tensor).
let scale (a: Tensor) (c: float) : Tensor =
    use s = Scalar.op_Implicit c
    a.mul(s)

/// a + c (a new tensor).
let addConstant (a: Tensor) (c: float) : Tensor =
    use s = Scalar.op_Implicit c
    a.add(s, one)

/// y + h * Σ_j w_j k_j, skipping zero weights; returns a new tensor (never `y` itself), so callers may dispose it.
/// One allocation: the first term makes the accumulator, the others are added into it in place.
let combine (y: Tensor) (h: float) (weights: float[]) (ks: Tensor[]) : Tensor =
    let mutable acc: Tensor = null
    for j in 0 .. weights.Length - 1 do
        let w = weights[j]
        if w <> 0.0 then
            if isNull acc then acc <- addScaled y ks[j] (h * w)
            else addScaledInPlace acc ks[j] (h * w) |> ignore
    if isNull acc then y.clone() else acc

/// h * Σ_j w_j k_j (no base term); used for the embedded error estimate. One allocation, as `combine`.
let weightedSum (h: float) (weights: float[]) (ks: Tensor[]) : Tensor =
    let mutable acc: Tensor = null
    for j in 0 .. weights.Length - 1 do
        let w = weights[j]
        if w <> 0.0 then
            if isNull acc then acc <- scale ks[j] (h * w)
            else addScaledInPlace acc ks[j] (h * w) |> ignore
    if isNull acc then torch.zeros_like ks[0] else acc

/// True when every element is finite (one host synchronisation).
let allFinite (x: Tensor) : bool =
    use finite = torch.isfinite x
    use all = finite.all()
    all.item<bool>()

/// Every element as a float on the host, in row-major order; the intermediate tensors are freed here.
let hostValues (t: Tensor) : float[] =
    use d = t.detach()
    use c = d.cpu()
    use f = c.to_type(torch.float64)
    use contiguous = f.contiguous()
    contiguous.data<float>().ToArray()

/// Human-readable shape, e.g. [4, 2].
let shapeText (x: Tensor) = "[" + (x.shape |> Array.map string |> String.concat ", ") + "]"

/// Checks a layer's input before it reaches libtorch: not null or disposed, at least `minDim` dimensions, `features`
/// entries along dimension `featureDim` (negative counts from the end), and the layer's dtype.
let checkLayerInput (layer: string) (x: Tensor) (minDim: int) (featureDim: int) (features: int64) (dtype: torch.ScalarType) =
    if isNull x then raise (System.ArgumentNullException("x", $"{layer} got a null input."))
    if x.IsInvalid then raise (System.ObjectDisposedException("x", $"{layer} got a disposed input."))
    if x.dim() < int64 minDim then
        raise (System.ArgumentException($"{layer} needs an input of at least {minDim} dimension(s); got shape {shapeText x}.", "x"))
    let axis = if featureDim < 0 then int (x.dim()) + featureDim else featureDim
    if x.shape[axis] <> features then
        raise (System.ArgumentException($"{layer} expects {features} features along dimension {axis}; got shape {shapeText x}.", "x"))
    if x.dtype <> dtype then
        raise (System.ArgumentException($"{layer} holds {dtype} weights but got a {x.dtype} input; convert one of them.", "x"))

/// Checks that a floating input `x` has the dtype of `owner`'s floating parameters before a solve starts (libtorch
/// would otherwise fail inside the field with a message naming neither): raises ArgumentException naming `x`, its
/// dtype and the parameters' dtype. Fields without floating parameters accept any input.
let checkInputDtype (owner: string) (parameters: seq<Tensor>) (x: Tensor) =
    if not (isNull x) && not x.IsInvalid && torch.is_floating_point x then
        match parameters |> Seq.tryFind (fun p -> torch.is_floating_point p) with
        | Some p when p.dtype <> x.dtype ->
            raise (System.ArgumentException($"{owner}'s field has {p.dtype} parameters but x is {x.dtype} (shape {shapeText x}); convert x (x.to(torch.{p.dtype})) or the field (field.to(torch.{x.dtype})).", "x"))
        | _ -> ()
