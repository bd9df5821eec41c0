namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A linear layer with piecewise-constant depth-variant weights (Massaroli et al. 2020, Corollary 2, "stacked"
/// Neural ODEs): over the partition 0 = s_0 < … < s_p = S, interval i uses its own flat weights
/// θ_i = [vec(W_i); b_i] ∈ R^{(in+1)·out}, rows of the parameter `Weights` ([p, (in+1)·out]). Zero-initialised, so the
/// stacked flow starts as the identity. The interval is passed explicitly (see Stacked.solve), so that a step ending
/// exactly on s_{i+1} still uses θ_i. Inside a block's field it is depth-aware: `forward(x)` uses the interval that
/// holds the depth the block told it (the last interval at s_p); a block's adaptive steps may then straddle a jump
/// of θ, which Stacked.solve avoids.
type StackedLinear(inFeatures: int64, outFeatures: int64, partition: float[], dtype: torch.ScalarType) as this =
    inherit Module<torch.Tensor, torch.Tensor>("stacked_linear")
    do
        Internal.Guard.layerSize "inFeatures" inFeatures
        Internal.Guard.layerSize "outFeatures" outFeatures
    let direction = Internal.Guard.timeGrid "partition" partition
    let partition = Array.copy partition
    let pieces = partition.Length - 1
    let weights = new Modules.Parameter(torch.zeros([| int64 pieces; (inFeatures + 1L) * outFeatures |], dtype = dtype))
    let mutable lastWeights: torch.Tensor = null
    let mutable depth = partition[0]
    do this.register_parameter("weights", weights)

    /// The interval i with s_i ≤ s < s_{i+1} (the last one at s = s_p); a depth outside [s_0, s_p] is an error.
    member _.IntervalOf(s: float) : int =
        let first, last = partition[0], partition[partition.Length - 1]
        if System.Double.IsNaN s || (s - first) * direction < 0.0 || (s - last) * direction > 0.0 then
            raise (System.ArgumentOutOfRangeException("depth", s, $"StackedLinear is defined on the partition's span [{first}, {last}]; got depth {s}."))
        let mutable i = 0
        while i < pieces - 1 && (s - partition[i + 1]) * direction >= 0.0 do i <- i + 1
        i

    interface IDepthAware with
        member _.SetDepth(s) = depth <- s

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// The layer with the weights of the interval holding the depth the block told it last.
    override m.forward(x: torch.Tensor) = m.forward(x, m.IntervalOf depth)

    /// The flat weights of every interval, [p, (in+1)·out].
    member _.Weights = weights
    /// The partition s_0 < … < s_p.
    member _.Partition = Array.copy partition
    /// θ_i as used by the most recent forward (an intermediate of its graph, for Theorem 1 / Corollary 2).
    member _.LastWeights = lastWeights

    /// The layer with the weights of interval `interval`.
    member _.forward(x: torch.Tensor, interval: int) =
        Internal.TensorOps.checkLayerInput "StackedLinear" x 1 -1 inFeatures weights.dtype
        if interval < 0 || interval >= pieces then
            raise (System.ArgumentOutOfRangeException("interval", interval, $"interval must be in 0..{pieces - 1}; got {interval}."))
        let w = weights[int64 interval]
        lastWeights <- w
        use flatWeight = w.narrow(0L, 0L, inFeatures * outFeatures)
        use weight = flatWeight.view(outFeatures, inFeatures)
        use bias = w.narrow(0L, inFeatures * outFeatures, outFeatures)
        functional.linear(x, weight, bias)
