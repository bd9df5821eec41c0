/// Building fields from layers in tests.
module NeuralOde.Tests.Support.Modules

open TorchSharp
open type TorchSharp.torch.nn

/// A layer as a Module<Tensor, Tensor> (for lists of layers of different types).
let m (layer: #Module<torch.Tensor, torch.Tensor>) = layer :> Module<torch.Tensor, torch.Tensor>

/// A Sequential of the given layers.
let chain (layers: Module<torch.Tensor, torch.Tensor> list) = Sequential(Array.ofList layers)
