/// The scaled error norm of step-size control on tensors (the tensor state algebra's, State/TensorAlgebra.fs) (Hairer, Nørsett & Wanner, "Solving ODEs I", eq. (4.11)):
/// RMS over all elements of err / (atol + rtol·max(|y0|, |y1|)). Stays on the device until `.item`.
module internal NeuralOde.Core.ErrorNorm

open TorchSharp

/// err / (atol/rtol + max(|y0|, |y1|)), element by element: rtol times the scaled error of each element.
let private scaledRatio (rtol: float) (atol: float) (err: torch.Tensor) (y0: torch.Tensor) (y1: torch.Tensor) =
    use a0 = y0.abs()
    use a1 = y1.abs()
    use scale = torch.maximum(a0, a1)
    use shift = Scalar.op_Implicit(atol / rtol)
    use denominator = Internal.TensorOps.addScalar scale shift
    err.div(denominator)

/// The scaled RMS error as a 0-dim tensor.
let scaled (rtol: float) (atol: float) (err: torch.Tensor) (y0: torch.Tensor) (y1: torch.Tensor) : torch.Tensor =
    // Only a number for the step controller: no graph. Written as ‖err / (atol/rtol + max(|y0|, |y1|))‖₂ / (rtol·√n)
    // (rtol > 0 is checked where the control is made): six kernels and a scalar multiply. The literal form
    // (scale·rtol + atol, square, mean, sqrt) took nine and measured 20–50 µs against 16–24 µs for this one on a
    // 10,000-element state, run for run (2 threads).
    use _ = torch.no_grad()
    // An empty state (a batch of none) has no error: every step is accepted (the RMS of nothing would be 0/0).
    if err.NumberOfElements = 0L then torch.zeros([||], dtype = err.dtype, device = err.device) else
    use ratio = scaledRatio rtol atol err y0 y1
    let norm = torch.linalg.vector_norm(ratio, 2.0)
    use factor = Scalar.op_Implicit(1.0 / (rtol * sqrt (float err.NumberOfElements)))
    norm.mul_(factor)

/// RMS of x / scale, as a host number (used by the first-step heuristic).
let rmsScaled (x: torch.Tensor) (scale: torch.Tensor) : float =
    if x.NumberOfElements = 0L then 0.0 else
    use r = x.div(scale)
    use sq = r.square()
    use mean = sq.mean()
    use root = mean.sqrt()
    use root64 = root.to_type(torch.float64)
    root64.item<float>()

/// The scaled RMS error of each row (along the first dimension) as `scaled` computes it over the whole state, on the
/// host; NaN or Inf where a row's error is. Used to attribute a failed solve to rows (Solve/RowDiagnosis.fs).
let scaledRows (rtol: float) (atol: float) (err: torch.Tensor) (y0: torch.Tensor) (y1: torch.Tensor) : float[] =
    if err.NumberOfElements = 0L then [||] else
    use _ = torch.no_grad()
    use ratio = scaledRatio rtol atol err y0 y1
    use byRow = ratio.reshape(err.shape[0], -1L)
    use squares = byRow.square()
    use means = squares.mean([| 1L |])
    use rms = means.sqrt()
    use rms64 = rms.to_type(torch.float64)
    rms64.data<float>().ToArray() |> Array.map (fun e -> e / rtol)
