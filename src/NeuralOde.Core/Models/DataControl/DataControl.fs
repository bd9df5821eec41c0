namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Data control (Massaroli et al. 2020, §4.1; torchdyn's DataControl): the field sees the block's input x at every
/// depth, dz/ds = f(s, x, z), by concatenating x to its input along dimension 1: DataControl → Linear(d + n_x, …) → ….
/// The map x ↦ z(S) is then no longer the flow of one field, so it need not be a homeomorphism (it can learn the
/// reflection φ(x) = −x in 1-D). Unlike torchdyn, which detaches x, the gradient through x is kept: layers before the
/// block are trained through the control too.
type DataControl() =
    inherit Module<torch.Tensor, torch.Tensor>("data_control")
    let mutable data: torch.Tensor = null

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    interface IDataControlled with
        member _.SetData(x) = data <- x

    override _.forward(z: torch.Tensor) =
        if isNull data then
            raise (System.InvalidOperationException("DataControl was evaluated with no data: it reads the input of the block (NeuralOdeModel, AdaptiveDepthModel) that evaluates it."))
        if isNull z then raise (System.ArgumentNullException("z"))
        if data.dim() <> z.dim() || data.dtype <> z.dtype then
            raise (System.ArgumentException($"DataControl concatenates x to the state along dimension 1, so they need the same rank and dtype; x is {Internal.TensorOps.shapeText data} {data.dtype}, the state {Internal.TensorOps.shapeText z} {z.dtype} (flatten or convert x before the block).", "z"))
        if data.shape[0] <> z.shape[0] then
            raise (System.ArgumentException($"DataControl holds data for a batch of {data.shape[0]} but the state has {z.shape[0]}; the block's input and state must share the batch dimension.", "z"))
        torch.cat([| z; data |], 1L)
