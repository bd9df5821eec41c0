/// The full-batch training loop several experiments share: Adam on the mean squared error against fixed targets,
/// one dispose scope per epoch, a progress bar; returns the final error.
module Appendix.Fit

open TorchSharp
open type TorchSharp.torch.nn

/// Trains `model` on (x, y) for `epochs` full-batch Adam steps at `lr`; the mean squared error after training.
let fullBatchMse (name: string) (model: torch.nn.Module<torch.Tensor, torch.Tensor>) (x: torch.Tensor) (y: torch.Tensor) (epochs: int) (lr: float) =
    use opt = torch.optim.Adam(model.parameters(), lr)
    let bar = Progress.Bar(name, epochs)
    for i in 1 .. epochs do
        use _ = torch.NewDisposeScope()
        opt.zero_grad()
        let loss = functional.mse_loss(model.forward x, y)
        NeuralOde.Core.FiniteGuard.backward 0 i model loss
        opt.step() |> ignore
        NeuralOde.Core.FiniteGuard.parameters 0 i model
        bar.Report(i, Tensors.scalar loss)
    use _ = torch.no_grad()
    use prediction = model.forward x
    use loss = functional.mse_loss(prediction, y)
    Tensors.scalar loss
