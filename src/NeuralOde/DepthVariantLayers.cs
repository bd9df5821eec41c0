using System;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// A linear layer whose weights depend on depth through a basis (Galerkin Neural ODEs, Corollary 1 of Dissecting
/// Neural ODEs): y = x W(s)ᵀ + b(s), θ(s) = α ψ(s). Coefficients start at zero. Inside a <see cref="NeuralOdeBlock"/>'s
/// field (e.g. in a <c>Sequential</c> with ordinary layers) the block tells it the depth, so <c>forward(x)</c> uses it;
/// <c>forward(x, s)</c> passes s explicitly.
/// </summary>
public sealed class GalerkinLinear : Module<torch.Tensor, torch.Tensor>, Core.IModuleWrapper
{
    readonly Core.GalLinear _layer;

    // Compiled field backends (NeuralOdeBlock.Backend) evaluate the wrapped layer directly: its forward is the layer's.
    Module Core.IModuleWrapper.Wrapped => _layer;

    /// <summary>Creates the layer.</summary>
    /// <param name="inFeatures">Width of the input.</param>
    /// <param name="outFeatures">Width of the output.</param>
    /// <param name="basis">The basis ψ.</param>
    /// <param name="dtype">The parameters' dtype.</param>
    /// <param name="trainDilation">torchdyn's <c>dilation</c>: a trainable d (starts at 1) with θ(s) = α ψ(d·s + h).</param>
    /// <param name="trainShift">torchdyn's <c>shift</c>: a trainable h (starts at 0). With either, the transformed depth
    /// may leave [0, S] as they train; the built-in bases extrapolate, a custom one only if built to.</param>
    public GalerkinLinear(long inFeatures, long outFeatures, Basis basis, torch.ScalarType dtype = torch.ScalarType.Float32,
                          bool trainDilation = false, bool trainShift = false)
        : base("galerkin_linear")
    {
        ArgumentNullException.ThrowIfNull(basis);
        _layer = new Core.GalLinear(inFeatures, outFeatures, basis.Value, dtype, trainDilation, trainShift);
        Basis = basis;
        register_module("layer", _layer);
    }

    /// <summary>The basis ψ.</summary>
    public Basis Basis { get; }

    /// <summary>The trainable dilation d, shape [1], or null when the layer was built without it.</summary>
    public TorchSharp.Modules.Parameter? Dilation => _layer.Dilation?.Value;

    /// <summary>The trainable shift h, shape [1], or null when the layer was built without it.</summary>
    public TorchSharp.Modules.Parameter? Shift => _layer.Shift?.Value;

    /// <summary>The coefficients α, shape [(in+1)·out, m].</summary>
    public TorchSharp.Modules.Parameter Coefficients => _layer.Coefficients;

    /// <summary>θ(s) as computed by the most recent forward (for <see cref="DepthGradients.Theorem1"/>).</summary>
    public torch.Tensor LastWeights => _layer.LastWeights;

    /// <summary>The layer at the depth its block told it last.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _layer.forward(x);

    /// <summary>The layer at depth <paramref name="s"/>.</summary>
    public torch.Tensor forward(torch.Tensor x, double s) => _layer.forward(x, s);
}

/// <summary>A 2-D convolution whose kernel and bias depend on depth through a basis (image Galerkin Neural ODEs).
/// Depth-aware like <see cref="GalerkinLinear"/>.</summary>
public sealed class GalerkinConv2d : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.GalConv2d _layer;

    /// <summary>Creates the layer (padding defaults to "same" for odd kernels); <paramref name="trainDilation"/> and
    /// <paramref name="trainShift"/> as <see cref="GalerkinLinear"/>'s.</summary>
    public GalerkinConv2d(long inChannels, long outChannels, long kernelSize, Basis basis, long stride = 1, long? padding = null,
                          torch.ScalarType dtype = torch.ScalarType.Float32, bool trainDilation = false, bool trainShift = false)
        : base("galerkin_conv2d")
    {
        ArgumentNullException.ThrowIfNull(basis);
        _layer = new Core.GalConv2d(inChannels, outChannels, kernelSize, basis.Value, stride, padding ?? kernelSize / 2, dtype,
                                    trainDilation, trainShift);
        Basis = basis;
        register_module("layer", _layer);
    }

    /// <summary>The basis ψ.</summary>
    public Basis Basis { get; }

    /// <summary>The trainable dilation d, shape [1], or null when the layer was built without it.</summary>
    public TorchSharp.Modules.Parameter? Dilation => _layer.Dilation?.Value;

    /// <summary>The trainable shift h, shape [1], or null when the layer was built without it.</summary>
    public TorchSharp.Modules.Parameter? Shift => _layer.Shift?.Value;

    /// <summary>The coefficients α, shape [out·in·k² + out, m].</summary>
    public TorchSharp.Modules.Parameter Coefficients => _layer.Coefficients;

    /// <summary>θ(s) as computed by the most recent forward.</summary>
    public torch.Tensor LastWeights => _layer.LastWeights;

    /// <summary>The convolution at the depth its block told it last.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _layer.forward(x);

    /// <summary>The convolution at depth <paramref name="s"/>.</summary>
    public torch.Tensor forward(torch.Tensor x, double s) => _layer.forward(x, s);
}

/// <summary>
/// A linear layer with piecewise-constant depth-variant weights (stacked Neural ODEs, Corollary 2): interval i of the
/// partition s_0 &lt; … &lt; s_p uses its own weights. Inside a block's field it uses the interval holding the depth.
/// Zero-initialised.
/// </summary>
public sealed class StackedLinear : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.StackedLinear _layer;

    /// <summary>Creates the layer over <paramref name="partition"/> (strictly increasing depths).</summary>
    public StackedLinear(long inFeatures, long outFeatures, double[] partition, torch.ScalarType dtype = torch.ScalarType.Float32)
        : base("stacked_linear")
    {
        _layer = new Core.StackedLinear(inFeatures, outFeatures, partition, dtype);
        register_module("layer", _layer);
    }

    /// <summary>The weights of every interval, [p, (in+1)·out].</summary>
    public TorchSharp.Modules.Parameter Weights => _layer.Weights;

    /// <summary>The weights the most recent forward used (for <see cref="DepthGradients"/>).</summary>
    public torch.Tensor LastWeights => _layer.LastWeights;

    /// <summary>The interval i with s_i ≤ s &lt; s_{i+1}.</summary>
    public int IntervalOf(double s) => _layer.IntervalOf(s);

    /// <summary>The layer with the weights of the interval holding the depth its block told it last.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _layer.forward(x);

    /// <summary>The layer with the weights of interval <paramref name="interval"/>.</summary>
    public torch.Tensor forward(torch.Tensor x, int interval) => _layer.forward(x, interval);
}

/// <summary>
/// Depth as an input feature (torchdyn's DepthCat): appends a column (for images a channel) filled with the depth s.
/// Inside a block's field the block tells it s; in an <see cref="AdaptiveDepthBlock"/> each sample gets its own depth.
/// </summary>
public sealed class DepthCat : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.DepthCat _layer = new();

    /// <summary>Creates the layer.</summary>
    public DepthCat() : base("depth_cat") => register_module("layer", _layer);

    /// <summary>x with a column of the depth its block told it last.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _layer.forward(x);

    /// <summary>x with a column filled with <paramref name="s"/>.</summary>
    public torch.Tensor forward(torch.Tensor x, double s) => _layer.forward(x, s);
}

/// <summary>
/// The base of a C# layer whose output depends on depth: a <see cref="NeuralOdeBlock"/> sets <see cref="Depth"/>
/// before every evaluation of its field, so the layer composes with others inside a <c>Sequential</c>.
/// </summary>
public abstract class DepthAwareModule : Module<torch.Tensor, torch.Tensor>, Core.IDepthAware
{
    /// <summary>Creates the module.</summary>
    protected DepthAwareModule(string name) : base(name) { }

    /// <summary>The depth s of the current evaluation.</summary>
    protected double Depth { get; private set; }

    void Core.IDepthAware.SetDepth(double depth) => Depth = depth;
}

/// <summary>
/// The base of a C# layer that takes one depth per sample, so that it also works inside an
/// <see cref="AdaptiveDepthBlock"/> (where each sample is at its own depth): <see cref="SampleDepths"/> is a tensor [N]
/// during such an evaluation and null otherwise, when <see cref="DepthAwareModule.Depth"/> holds the depth of the
/// whole batch.
/// </summary>
public abstract class SampleDepthAwareModule : DepthAwareModule, Core.ISampleDepthAware
{
    /// <summary>Creates the module.</summary>
    protected SampleDepthAwareModule(string name) : base(name) { }

    /// <summary>The depth of each sample [N] during an adaptive-depth evaluation; null otherwise.</summary>
    protected torch.Tensor? SampleDepths { get; private set; }

    void Core.ISampleDepthAware.SetSampleDepth(torch.Tensor depths) => SampleDepths = depths;
}

/// <summary>
/// The base of a C# layer that reads the block's input x at every depth (data control, Dissecting Neural ODEs §4.1):
/// <see cref="Data"/> is x during each evaluation of the block's field, and null outside one.
/// </summary>
public abstract class DataControlledModule : Module<torch.Tensor, torch.Tensor>, Core.IDataControlled
{
    /// <summary>Creates the module.</summary>
    protected DataControlledModule(string name) : base(name) { }

    /// <summary>The block's input x during an evaluation of its field; null outside one.</summary>
    protected torch.Tensor? Data { get; private set; }

    void Core.IDataControlled.SetData(torch.Tensor data) => Data = data;
}
