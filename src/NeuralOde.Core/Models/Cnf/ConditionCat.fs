namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// Appends the conditioning data c [N, k] to the features of its input z [N, d], giving [N, d + k]: the layer that
/// makes a vector field data-controlled, dz/dt = f([z; c]) (Massaroli et al. 2020, §4.1; the conditional CNF of §6.2).
/// The block or flow that evaluates the field hands it the data before every evaluation (IDataControlled).
type ConditionCat(name: string) =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    let mutable data: torch.Tensor = null

    /// A layer with the default name "condition_cat".
    new() = new ConditionCat("condition_cat")

    /// The data of the next evaluations (null when none was given).
    member _.Data = data

    /// [z; c]: z [N, d] with the data c [N, k] appended along the features.
    override _.forward(z: torch.Tensor) =
        if isNull data then
            raise (System.InvalidOperationException("ConditionCat has no data: evaluate it inside a flow or block that is given a condition (e.g. the flow's LogProbability(x, condition)), or call SetData first."))
        if z.dim() <> 2L || data.dim() <> 2L || z.shape[0] <> data.shape[0] then
            raise (System.ArgumentException($"ConditionCat joins a batch z [N, d] with data [N, k]; got z {Internal.TensorOps.shapeText z} and data {Internal.TensorOps.shapeText data}. Give one condition row per sample.", "z"))
        if data.dtype = z.dtype then torch.cat([| z; data |], 1L)
        else
            use c = data.to_type(z.dtype)
            torch.cat([| z; c |], 1L)

    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    interface IDataControlled with
        /// Sets the conditioning data [N, k] of the next evaluations; null clears it.
        member _.SetData(d: torch.Tensor) = data <- d
