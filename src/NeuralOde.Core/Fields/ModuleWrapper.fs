namespace NeuralOde.Core

/// A module whose forward is exactly that of the module it wraps (a facade's layer around a core one, such as the C#
/// GalerkinLinear around GalLinear): shape checks and field backends see through it to the wrapped module.
type IModuleWrapper =
    /// The wrapped module.
    abstract Wrapped: TorchSharp.torch.nn.Module
