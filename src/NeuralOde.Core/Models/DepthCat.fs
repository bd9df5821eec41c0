namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Depth as an input feature (torchdyn's DepthCat; the "depth-variant (concat)" Neural ODE of Massaroli et al. 2020,
/// §1): appends a column (or, for images [N, C, H, W], a channel) filled with s to x. The simple baseline for
/// depth-variant vector fields, next to Galerkin and stacked parameters. The depth is passed explicitly,
/// `forward(x, s)`, or told by the block that evaluates it, `forward(x)`; it also takes one depth per sample
/// (adaptive depth, per-sample spans).
type DepthCat() =
    inherit Module<torch.Tensor, torch.Tensor>("depth_cat")
    let mutable depth = 0.0
    let mutable sampleDepths: torch.Tensor = null

    static member private Check(x: torch.Tensor) =
        if x.dim() < 2L then
            raise (System.ArgumentException($"DepthCat needs a batched input [N, features] or [N, C, H, W]; got shape {Internal.TensorOps.shapeText x}.", "x"))

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// The scalar depth `forward(x)` uses when no per-sample depths are set.
    member _.Depth = depth

    interface ISampleDepthAware with
        member _.SetDepth(s) = depth <- s
        member _.SetSampleDepth(depths) = sampleDepths <- depths

    /// x with a column (channel) of the depth the block told it last: per sample when it set per-sample depths.
    override m.forward(x: torch.Tensor) =
        if isNull sampleDepths then m.forward(x, depth)
        else
            DepthCat.Check x
            if sampleDepths.numel() <> x.shape[0] then
                raise (System.ArgumentException($"DepthCat was given {sampleDepths.numel()} per-sample depths for a batch of {x.shape[0]}.", "x"))
            let shape = Array.copy x.shape
            shape[1] <- 1L
            let view = Array.init shape.Length (fun i -> if i = 0 then x.shape[0] else 1L)
            use typed = sampleDepths.to_type(x.dtype)
            use d = typed.reshape(view)
            use column = d.expand(shape)
            torch.cat([| x; column |], 1L)

    /// x with a column (channel) filled with s.
    member _.forward(x: torch.Tensor, s: float) =
        DepthCat.Check x
        let shape = Array.copy x.shape
        shape[1] <- 1L
        use value = Scalar.op_Implicit s
        use depth = torch.full(shape, value, dtype = x.dtype, device = x.device)
        torch.cat([| x; depth |], 1L)
