namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Input-layer augmentation (Massaroli et al. 2020, §4.4 "IL"): z(0) = h_x(x), with h_x a learned lift from R^{n_x}
/// to R^{n_x + n_a} ("a single linear layer is sufficient"). With `keepInput` the lift is partial, z(0) = [h_x(x); x]
/// (torchdyn's Augmenter(augment_func=h)), so only the added features are learned.
type InputLayerAugmentation(lift: Module<torch.Tensor, torch.Tensor>, keepInput: bool) as this =
    inherit Module<torch.Tensor, torch.Tensor>("input_layer_augmentation")
    do
        if isNull lift then raise (System.ArgumentNullException("lift"))
        this.register_module("lift", lift)

    /// Full input-layer augmentation: z(0) = h_x(x).
    new(lift) = new InputLayerAugmentation(lift, false)

    /// The lift h_x.
    member _.Lift = lift

    override _.forward(x: torch.Tensor) =
        if not keepInput then lift.forward x
        else
            use h = lift.forward x
            torch.cat([| h; x |], 1L)
