using System;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// Zero augmentation (ANODE; Dissecting Neural ODEs §4.4 "0-aug"): z(0) = [x; 0] with <c>dims</c> zero features
/// appended along dimension 1 (columns for vectors, channels for images). Put it before a <see cref="NeuralOdeBlock"/>
/// whose field works on the augmented width.
/// </summary>
public sealed class ZeroAugmentation : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.ZeroAugmentation _layer;

    /// <summary>Creates the augmenter.</summary>
    /// <param name="dims">Number of zero features (≥ 1).</param>
    /// <param name="prepend">Zeros first, as torchdyn's Augmenter; ANODE (the default) appends them.</param>
    public ZeroAugmentation(long dims, bool prepend = false) : base("zero_augmentation")
    {
        _layer = new Core.ZeroAugmentation(dims, prepend);
        register_module("layer", _layer);
    }

    /// <inheritdoc />
    public override torch.Tensor forward(torch.Tensor x) => _layer.forward(x);
}

/// <summary>
/// Input-layer augmentation (Dissecting Neural ODEs §4.4 "IL"): z(0) = h_x(x) with a learned lift h_x (a single
/// <c>Linear(n_x, n_x + n_a)</c> is enough), or z(0) = [h_x(x); x] with <c>keepInput</c>.
/// </summary>
public sealed class InputLayerAugmentation : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.InputLayerAugmentation _layer;

    /// <summary>Creates the augmenter around the lift <paramref name="lift"/>.</summary>
    public InputLayerAugmentation(Module<torch.Tensor, torch.Tensor> lift, bool keepInput = false) : base("input_layer_augmentation")
    {
        ArgumentNullException.ThrowIfNull(lift);
        _layer = new Core.InputLayerAugmentation(lift, keepInput);
        register_module("layer", _layer);
    }

    /// <inheritdoc />
    public override torch.Tensor forward(torch.Tensor x) => _layer.forward(x);
}

/// <summary>
/// A higher-order vector field (Dissecting Neural ODEs §4.4 "HO"): the state splits into <c>order</c> equal chunks
/// z_1 … z_n along dimension 1; dz_i/ds = z_{i+1}, and only dz_n/ds = g(s, z) is learned, <c>inner</c> mapping the whole
/// state to one chunk. Use it as a block's field.
/// </summary>
public sealed class HigherOrderField : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.HigherOrderField _field;

    /// <summary>Creates the field.</summary>
    public HigherOrderField(int order, Module<torch.Tensor, torch.Tensor> inner) : base("higher_order_field")
    {
        ArgumentNullException.ThrowIfNull(inner);
        _field = new Core.HigherOrderField(order, inner);
        register_module("field", _field);
    }

    /// <inheritdoc />
    public override torch.Tensor forward(torch.Tensor z) => _field.forward(z);
}

/// <summary>
/// Data control (Dissecting Neural ODEs §4.1): concatenates the block's input x to the state, so the field is
/// f(s, x, z). Put it first in a block's field: <c>Sequential(new DataControl(), Linear(d + n_x, h), …)</c>. The
/// gradient through x is kept (torchdyn detaches it).
/// </summary>
public sealed class DataControl : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.DataControl _layer = new();

    /// <summary>Creates the layer.</summary>
    public DataControl() : base("data_control") => register_module("layer", _layer);

    /// <inheritdoc />
    public override torch.Tensor forward(torch.Tensor z) => _layer.forward(z);
}
