/// Checks that a training step stays finite, and names what first went non-finite: the loss before the backward
/// pass, each parameter's gradient after it, each parameter after the optimizer's step. The trainer runs it every
/// iteration; hand-written loops call `backward` and `afterStep` in place of `loss.backward()`.
module NeuralOde.Core.FiniteGuard

open TorchSharp
open NeuralOde

let private where (epoch: int) (iteration: int) =
    if epoch > 0 then $"at epoch {epoch}, iteration {iteration}" else $"at iteration {iteration}"

let private finite (t: torch.Tensor) =
    use _ = torch.no_grad()
    use ok = t.isfinite().all()
    ok.ToBoolean()

/// Raises TrainingDivergedException when the loss is NaN or infinite.
let loss (epoch: int) (iteration: int) (value: torch.Tensor) =
    if not (finite value) then
        let shown = if value.numel() = 1L then string (value.ToDouble()) else "non-finite values"
        raise (TrainingDivergedException(epoch, iteration, null, "loss",
                 $"The training loss is {shown} {where epoch iteration}, before its backward pass: every parameter and gradient was finite until then. Look at the data of this batch, the loss's logarithms and divisions, and the learning rate."))

/// Raises TrainingDivergedException naming the first parameter (in named_parameters' order) whose gradient holds
/// NaN or Inf.
let gradients (epoch: int) (iteration: int) (model: torch.nn.Module) =
    for struct (name, p) in model.named_parameters() do
        let g = p.grad
        if not (isNull g) && not (finite g) then
            raise (TrainingDivergedException(epoch, iteration, name, "gradient",
                     $"The gradient of parameter '{name}' (shape {Internal.TensorOps.shapeText p}) holds NaN or Inf {where epoch iteration}, while the loss and every parameter were finite. Lower the learning rate or the solver's tolerances, clip the gradients, or check the layers that feed '{name}'."))

/// Raises TrainingDivergedException naming the first parameter that holds NaN or Inf (after an optimizer step).
let parameters (epoch: int) (iteration: int) (model: torch.nn.Module) =
    for struct (name, p) in model.named_parameters() do
        if not (finite p) then
            raise (TrainingDivergedException(epoch, iteration, name, "parameter",
                     $"Parameter '{name}' (shape {Internal.TensorOps.shapeText p}) holds NaN or Inf after the optimizer's step {where epoch iteration}, although its gradient was finite. Lower the learning rate."))

/// The loss's check, its backward pass (Ode.backward: an adjoint's failure raises as itself) and the gradients' check.
let backward (epoch: int) (iteration: int) (model: torch.nn.Module) (value: torch.Tensor) =
    loss epoch iteration value
    Ode.backward value
    gradients epoch iteration model
