using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// A linear layer whose weights depend on depth through a basis (Galerkin Neural ODEs, Corollary 1 of Dissecting
/// Neural ODEs): y = x W(s)ᵀ + b(s), θ(s) = α ψ(s). Coefficients start at zero. Call <c>forward(x, s)</c>.
/// </summary>
public sealed class GalerkinLinear : Module<torch.Tensor, double, torch.Tensor>
{
    readonly Core.GalLinear _layer;

    /// <summary>Creates the layer.</summary>
    public GalerkinLinear(long inFeatures, long outFeatures, Basis basis, torch.ScalarType dtype = torch.ScalarType.Float32)
        : base("galerkin_linear")
    {
        _layer = new Core.GalLinear(inFeatures, outFeatures, basis.Value, dtype);
        register_module("layer", _layer);
    }

    /// <summary>The coefficients α, shape [(in+1)·out, m].</summary>
    public TorchSharp.Modules.Parameter Coefficients => _layer.Coefficients;

    /// <summary>θ(s) as computed by the most recent forward (for <see cref="DepthGradients.Theorem1"/>).</summary>
    public torch.Tensor LastWeights => _layer.LastWeights;

    /// <inheritdoc />
    public override torch.Tensor forward(torch.Tensor x, double s) => _layer.forward(x, s);
}

/// <summary>A 2-D convolution whose kernel and bias depend on depth through a basis (image Galerkin Neural ODEs).</summary>
public sealed class GalerkinConv2d : Module<torch.Tensor, double, torch.Tensor>
{
    readonly Core.GalConv2d _layer;

    /// <summary>Creates the layer (padding defaults to "same" for odd kernels).</summary>
    public GalerkinConv2d(long inChannels, long outChannels, long kernelSize, Basis basis, long stride = 1, long? padding = null,
                          torch.ScalarType dtype = torch.ScalarType.Float32) : base("galerkin_conv2d")
    {
        _layer = new Core.GalConv2d(inChannels, outChannels, kernelSize, basis.Value, stride, padding ?? kernelSize / 2, dtype);
        register_module("layer", _layer);
    }

    /// <summary>The coefficients α, shape [out·in·k² + out, m].</summary>
    public TorchSharp.Modules.Parameter Coefficients => _layer.Coefficients;

    /// <summary>θ(s) as computed by the most recent forward.</summary>
    public torch.Tensor LastWeights => _layer.LastWeights;

    /// <inheritdoc />
    public override torch.Tensor forward(torch.Tensor x, double s) => _layer.forward(x, s);
}
