namespace NeuralOde.Core

open TorchSharp

/// A module whose output depends on the depth s (torchdyn's DepthCat and GalLinear read `t` the same way): the
/// block that evaluates the field tells it s before every evaluation, so depth-variant layers compose with ordinary
/// layers inside a `Sequential` of `Module<Tensor, Tensor>`.
type IDepthAware =
    /// Sets the depth s of the next evaluations.
    abstract SetDepth: depth: float -> unit

/// A depth-aware module that also accepts one depth per sample, a tensor [N] (adaptive depth and per-sample spans
/// evaluate a batch at different depths). `SetSampleDepth null` returns it to the scalar depth of SetDepth.
type ISampleDepthAware =
    inherit IDepthAware
    /// Sets the per-sample depths [N] of the next evaluations; null clears them.
    abstract SetSampleDepth: depths: torch.Tensor -> unit

/// A module that reads the block's input x at every depth (the data-controlled Neural ODE, Massaroli et al. 2020,
/// §4.1: dz/ds = f(s, x, z)). The block hands it x before every evaluation; null clears it.
type IDataControlled =
    /// Sets the data x [N, ...] of the next evaluations.
    abstract SetData: data: torch.Tensor -> unit
