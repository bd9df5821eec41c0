namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A linear layer whose weights depend on depth through a basis (Massaroli et al. 2020, Corollary 1; torchdyn's
/// GalLinear): every entry p of the flat weights θ(s) = [vec(W(s)); b(s)] ∈ R^{(in+1)·out} is
/// θ_p(s) = Σ_j α_{p,j} ψ_j(s), and y = x W(s)ᵀ + b(s). The coefficients α, of shape [(in+1)·out, m], start at zero
/// (the layer outputs 0), as torchdyn's. Opt-in, as torchdyn's `dilation` and `shift`: a trainable dilation d
/// (starts at 1) and shift h (starts at 0) of the depth, θ(s) = α ψ(d·s + h) (GalerkinDepth says how ψ is
/// differentiated in them: exactly to first order, so every gradient is exact but a second derivative in d or h
/// is not; and Basis.transformedAt where the transformed depth may go). The depth is passed
/// explicitly, `forward(x, s)`, or told by the block that evaluates it (IDepthAware), `forward(x)`: so it composes
/// with ordinary layers inside a `Sequential` that a NeuralOdeModel evaluates.
type GalLinear(inFeatures: int64, outFeatures: int64, basis: Basis, dtype: torch.ScalarType, dilation: bool, shift: bool) as this =
    inherit Module<torch.Tensor, torch.Tensor>("gal_linear")
    do
        Internal.Guard.layerSize "inFeatures" inFeatures
        Internal.Guard.layerSize "outFeatures" outFeatures
        if obj.ReferenceEquals(basis, null) then raise (System.ArgumentNullException("basis"))
    let coefficients =
        new Modules.Parameter(torch.zeros([| (inFeatures + 1L) * outFeatures; int64 basis.Terms |], dtype = dtype))
    let dilationParameter, shiftParameter = GalerkinDepth.parameters dilation shift dtype
    let mutable lastWeights: torch.Tensor = null
    let mutable depth = 0.0
    do
        this.register_parameter("coefficients", coefficients)
        dilationParameter |> Option.iter (fun p -> this.register_parameter("dilation", p))
        shiftParameter |> Option.iter (fun p -> this.register_parameter("shift", p))

    /// A layer of `dtype` without trainable dilation and shift: θ(s) = α ψ(s).
    new(inFeatures, outFeatures, basis, dtype) = new GalLinear(inFeatures, outFeatures, basis, dtype, false, false)

    /// A float32 layer without trainable dilation and shift.
    new(inFeatures, outFeatures, basis) = new GalLinear(inFeatures, outFeatures, basis, torch.float32, false, false)

    /// The coefficients α, shape [(in+1)·out, m].
    member _.Coefficients = coefficients
    /// The basis ψ.
    member _.Basis = basis
    /// Number of weights n_θ = (in+1)·out at one depth.
    member _.WeightCount = (inFeatures + 1L) * outFeatures
    /// Width of the input.
    member _.InFeatures = inFeatures
    /// Width of the output.
    member _.OutFeatures = outFeatures

    /// The trainable dilation d, shape [1] (starts at 1), when the layer was built with it.
    member _.Dilation: Modules.Parameter option = dilationParameter
    /// The trainable shift h, shape [1] (starts at 0), when the layer was built with it.
    member _.Shift: Modules.Parameter option = shiftParameter
    /// Whether the depth is transformed, s' = d·s + h, by a trainable dilation or shift.
    member _.TransformsDepth = dilationParameter.IsSome || shiftParameter.IsSome

    /// θ(s) = α ψ(s) (or α ψ(d·s + h) with trainable dilation and shift), the flat weights at depth s
    /// (differentiable in α, d and h).
    member _.WeightsAt(s: float) : torch.Tensor =
        use psi = GalerkinDepth.psi basis dilationParameter shiftParameter s coefficients
        // mv, not matmul: TorchSharp 0.107's matmul does not catch libtorch's errors, so a mismatch there aborts
        // the process instead of raising (see docs/troubleshooting.md); mm and mv raise.
        coefficients.mv(psi)

    /// θ(s) as computed by the most recent forward: an intermediate of that forward's graph, so the gradient of
    /// its output with respect to θ(s) itself (Theorem 1) can be taken. Valid until the tensor's scope ends.
    member _.LastWeights = lastWeights

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// The depth `forward(x)` uses: the last one the block told it (0 before any).
    member _.Depth = depth

    interface IDepthAware with
        member _.SetDepth(s) = depth <- s

    /// y = x W(depth)ᵀ + b(depth) at the depth the block told it last.
    override m.forward(x: torch.Tensor) = m.forward(x, depth)

    /// y = x W(s)ᵀ + b(s).
    member m.forward(x: torch.Tensor, s: float) =
        Internal.TensorOps.checkLayerInput "GalLinear" x 1 -1 inFeatures coefficients.dtype
        let w = m.WeightsAt s
        lastWeights <- w
        use flatWeight = w.narrow(0L, 0L, inFeatures * outFeatures)
        use weight = flatWeight.view(outFeatures, inFeatures)
        use bias = w.narrow(0L, inFeatures * outFeatures, outFeatures)
        functional.linear(x, weight, bias)
