namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A 2-D convolution whose kernel and bias depend on depth through a basis (torchdyn's GalConv2d, for image
/// Galerkin Neural ODEs): the flat weights θ(s) = [vec(K(s)); b(s)] ∈ R^{out·in·k² + out}, each entry
/// θ_p(s) = Σ_j α_{p,j} ψ_j(s); y = conv2d(x, K(s), b(s)). Coefficients zero-initialised. Opt-in, as torchdyn's:
/// a trainable dilation d (starts at 1) and shift h (starts at 0) of the depth, θ(s) = α ψ(d·s + h) (see
/// GalerkinDepth and Basis.transformedAt; exact to first order in d and h). The depth is passed explicitly,
/// `forward(x, s)`, or told by the block that evaluates it (IDepthAware), `forward(x)`.
type GalConv2d(inChannels: int64, outChannels: int64, kernelSize: int64, basis: Basis, stride: int64, padding: int64,
               dtype: torch.ScalarType, dilation: bool, shift: bool) as this =
    inherit Module<torch.Tensor, torch.Tensor>("gal_conv2d")
    do
        Internal.Guard.layerSize "inChannels" inChannels
        Internal.Guard.layerSize "outChannels" outChannels
        Internal.Guard.layerSize "kernelSize" kernelSize
        Internal.Guard.layerSize "stride" stride
        if padding < 0L then raise (System.ArgumentOutOfRangeException("padding", padding, $"padding must be ≥ 0; got {padding}."))
        if obj.ReferenceEquals(basis, null) then raise (System.ArgumentNullException("basis"))
    let kernelCount = outChannels * inChannels * kernelSize * kernelSize
    let coefficients =
        new Modules.Parameter(torch.zeros([| kernelCount + outChannels; int64 basis.Terms |], dtype = dtype))
    let dilationParameter, shiftParameter = GalerkinDepth.parameters dilation shift dtype
    let mutable lastWeights: torch.Tensor = null
    let mutable depth = 0.0
    do
        this.register_parameter("coefficients", coefficients)
        dilationParameter |> Option.iter (fun p -> this.register_parameter("dilation", p))
        shiftParameter |> Option.iter (fun p -> this.register_parameter("shift", p))

    /// A layer without trainable dilation and shift: θ(s) = α ψ(s).
    new(inChannels, outChannels, kernelSize, basis, stride, padding, dtype) =
        new GalConv2d(inChannels, outChannels, kernelSize, basis, stride, padding, dtype, false, false)

    /// A float32 layer with stride 1 and "same" padding for odd kernels, without trainable dilation and shift.
    new(inChannels, outChannels, kernelSize, basis) =
        new GalConv2d(inChannels, outChannels, kernelSize, basis, 1L, kernelSize / 2L, torch.float32, false, false)

    /// The coefficients α, shape [out·in·k² + out, m].
    member _.Coefficients = coefficients
    /// The basis ψ.
    member _.Basis = basis
    /// θ(s) as computed by the most recent forward (for Theorem 1).
    member _.LastWeights = lastWeights

    /// The trainable dilation d, shape [1] (starts at 1), when the layer was built with it.
    member _.Dilation: Modules.Parameter option = dilationParameter
    /// The trainable shift h, shape [1] (starts at 0), when the layer was built with it.
    member _.Shift: Modules.Parameter option = shiftParameter
    /// Whether the depth is transformed, s' = d·s + h, by a trainable dilation or shift.
    member _.TransformsDepth = dilationParameter.IsSome || shiftParameter.IsSome

    /// θ(s) = α ψ(s) (or α ψ(d·s + h) with trainable dilation and shift), the flat kernel and bias at depth s.
    member _.WeightsAt(s: float) : torch.Tensor =
        use psi = GalerkinDepth.psi basis dilationParameter shiftParameter s coefficients
        coefficients.mv(psi)

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// The depth `forward(x)` uses: the last one the block told it (0 before any).
    member _.Depth = depth

    interface IDepthAware with
        member _.SetDepth(s) = depth <- s

    /// conv2d with the kernel and bias of the depth the block told it last.
    override m.forward(x: torch.Tensor) = m.forward(x, depth)

    /// conv2d(x, K(s), b(s)).
    member m.forward(x: torch.Tensor, s: float) =
        Internal.TensorOps.checkLayerInput "GalConv2d" x 4 1 inChannels coefficients.dtype
        let w = m.WeightsAt s
        lastWeights <- w
        use flatKernel = w.narrow(0L, 0L, kernelCount)
        use kernel = flatKernel.view(outChannels, inChannels, kernelSize, kernelSize)
        use bias = w.narrow(0L, kernelCount, outChannels)
        functional.conv2d(x, kernel, bias, strides = [| stride; stride |], padding = [| padding; padding |])
