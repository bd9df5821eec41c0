/// The scaled error norm of step-size control (Hairer, Nørsett & Wanner, "Solving ODEs I", eq. (4.11)):
/// RMS over all elements of err / (atol + rtol·max(|y0|, |y1|)). Stays on the device until `.item`.
module NeuralOde.Core.ErrorNorm

open TorchSharp

/// The scaled RMS error as a 0-dim tensor.
let scaled (rtol: float) (atol: float) (err: torch.Tensor) (y0: torch.Tensor) (y1: torch.Tensor) : torch.Tensor =
    // Only a number for the step controller: no graph. Temporaries this function made are updated in place.
    use _ = torch.no_grad()
    use a0 = y0.abs()
    use a1 = y1.abs()
    use scale = torch.maximum(a0, a1)
    use r = Scalar.op_Implicit rtol
    use a = Scalar.op_Implicit atol
    scale.mul_(r).add_(a) |> ignore
    use ratio = err.div(scale)
    ratio.mul_(ratio) |> ignore
    let mean = ratio.mean()
    mean.sqrt_()

/// RMS of x / scale, as a host number (used by the first-step heuristic).
let rmsScaled (x: torch.Tensor) (scale: torch.Tensor) : float =
    use r = x.div(scale)
    use sq = r.square()
    use mean = sq.mean()
    use root = mean.sqrt()
    root.to_type(torch.float64).item<float>()
