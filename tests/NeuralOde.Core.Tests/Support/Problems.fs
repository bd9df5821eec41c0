/// Problems with known solutions, shared by the solver tests.
module NeuralOde.Tests.Support.Problems

open TorchSharp
open NeuralOde.Core

/// y1' = cos(t)·y1 and y2' = −cos(t)·y2², y(0) = (1, 1): y1 = exp(sin t), y2 = 1/(1 + sin t). Nonlinear and
/// time-dependent, so every order condition of a Runge–Kutta method matters.
let nonlinear: VectorField =
    fun t y ->
        use y1 = y.narrow(-1, 0L, 1L)
        use y2 = y.narrow(-1, 1L, 1L)
        use a = y1.mul(Scalar.op_Implicit (cos t))
        use sq = y2.square()
        use b = sq.mul(Scalar.op_Implicit (-(cos t)))
        torch.cat(([| a; b |]: torch.Tensor[]), -1L)

let nonlinearExact (t: float) = [| exp (sin t); 1.0 / (1.0 + sin t) |]

/// dx/dt = A x with A given as rows; the state is a row vector (batch × n), so f = x Aᵀ.
let linear (a: float[][]) : VectorField =
    let at = (Tensors.f64m a).t().contiguous()
    fun _ x ->
        use m = at.to_type(x.dtype)
        x.matmul(m)

/// A damped oscillator: eigenvalues −0.1 ± 3i.
let oscillatory = [| [| -0.1; 3.0 |]; [| -3.0; -0.1 |] |]
/// Stiff-ish: eigenvalues −1 and −50, coupled.
let stiffish = [| [| -1.0; 0.5 |]; [| 0.0; -50.0 |] |]
