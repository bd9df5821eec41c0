namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Depth as an input feature (torchdyn's DepthCat; the "depth-variant (concat)" Neural ODE of Massaroli et al. 2020,
/// §1): appends a column (or, for images [N, C, H, W], a channel) filled with s to x. The simple baseline for
/// depth-variant vector fields, next to Galerkin and stacked parameters.
type DepthCat() =
    inherit Module<torch.Tensor, float, torch.Tensor>("depth_cat")

    override _.forward(x: torch.Tensor, s: float) =
        let shape = Array.copy x.shape
        if shape.Length < 2 then
            raise (System.ArgumentException($"DepthCat needs a batched input [N, features] or [N, C, H, W]; got shape {Internal.TensorOps.shapeText x}.", "x"))
        shape[1] <- 1L
        use value = Scalar.op_Implicit s
        use depth = torch.full(shape, value, dtype = x.dtype, device = x.device)
        torch.cat([| x; depth |], 1L)
