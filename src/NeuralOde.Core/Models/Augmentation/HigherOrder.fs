namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Higher-order augmentation (Massaroli et al. 2020, §4.4 "HO"; torchdyn's `order`): the state z = [z_1, …, z_n],
/// n = `order` equal chunks along dimension 1, follows dz_i/ds = z_{i+1} (i < n), dz_n/ds = g(s, z), so only the n-th
/// derivative is parameterised: `inner` maps the whole state to one chunk. Second order: ż_q = z_p, ż_p = g(s, z_q, z_p).
/// Depth-aware and data-controlled modules inside `inner` are told depth and data like any other.
type HigherOrderField(order: int, inner: Module<torch.Tensor, torch.Tensor>) as this =
    inherit Module<torch.Tensor, torch.Tensor>("higher_order_field")
    do
        if order < 1 then raise (System.ArgumentOutOfRangeException("order", order, $"order must be at least 1; got {order}."))
        if isNull inner then raise (System.ArgumentNullException("inner"))
        this.register_module("inner", inner)

    /// The order n.
    member _.Order = order
    /// g, the parameterised n-th derivative.
    member _.Inner = inner

    override _.forward(z: torch.Tensor) =
        if isNull z then raise (System.ArgumentNullException("z"))
        if z.IsInvalid then raise (System.ObjectDisposedException("z", "HigherOrderField got a disposed state."))
        if z.dim() < 2L || z.shape[1] % int64 order <> 0L then
            raise (System.ArgumentException($"A field of order {order} needs a state whose dimension 1 divides into {order} equal chunks; got shape {Internal.TensorOps.shapeText z}.", "z"))
        let chunk = z.shape[1] / int64 order
        let g =
            try inner.forward z
            with e -> raise (System.InvalidOperationException($"The inner field of a HigherOrderField failed on a state of shape {Internal.TensorOps.shapeText z} ({z.dtype}): {e.Message.Split('\n').[0]}", e))
        if g.dim() < 2L || g.shape[1] <> chunk then
            raise (System.ArgumentException($"The inner field of a HigherOrderField of order {order} must return one chunk of {chunk} features (the n-th derivative); it returned shape {Internal.TensorOps.shapeText g}.", "inner"))
        if order = 1 then g
        else
            use higher = z.narrow(1L, chunk, chunk * int64 (order - 1))
            torch.cat([| higher; g |], 1L)
