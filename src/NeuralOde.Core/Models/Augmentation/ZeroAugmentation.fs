namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Zero augmentation (Dupont et al. 2019, ANODE; Massaroli et al. 2020, §4.4 "0-aug"): z(0) = [x; 0], with `dims`
/// zero features appended along dimension 1 — columns for vectors [N, d], channels for images [N, C, H, W].
/// `prepend` puts the zeros first, as torchdyn's Augmenter(augment_idx=1) does; ANODE appends them (the default).
type ZeroAugmentation(dims: int64, prepend: bool) =
    inherit Module<torch.Tensor, torch.Tensor>("zero_augmentation")
    do
        Internal.Guard.layerSize "dims" dims

    /// Appends `dims` zero features.
    new(dims) = new ZeroAugmentation(dims, false)

    /// The number of zero features added.
    member _.Dims = dims

    override _.forward(x: torch.Tensor) =
        if isNull x then raise (System.ArgumentNullException("x"))
        if x.dim() < 2L then
            raise (System.ArgumentException($"ZeroAugmentation needs a batched input [N, features, ...]; got shape {Internal.TensorOps.shapeText x}.", "x"))
        let shape = Array.copy x.shape
        shape[1] <- dims
        use zeros = torch.zeros(shape, dtype = x.dtype, device = x.device)
        torch.cat((if prepend then [| zeros; x |] else [| x; zeros |]), 1L)
