/// W6's problem: a 10,000-dimensional linear ODE dx/dt = A x with a known solution. A = −γI + blockdiag(ω_i J),
/// J = [[0, −1], [1, 0]], so every pair (a, b) of coordinates is a damped rotation: a + ib ↦ e^{(−γ + iω_i)t}(a + ib).
/// The field costs three element-wise kernels, so the solve's time is the solver's own work on a large state.
module NeuralOde.Benchmarks.LinearOde

open System
open TorchSharp

type Tensor = torch.Tensor

/// The problem at dimension n (even): rates ω_i evenly spaced in [1, 3], damping γ = 0.1, x0 ~ N(0, 1).
type Problem(n: int, dtype: torch.ScalarType, seed: int) =
    let gamma = 0.1
    let omega = torch.linspace(1.0, 3.0, int64 (n / 2), dtype = torch.float64)
    // W = ω ⊗ [−1, 1]: f(x) pairs = −γ v + W ⊙ flip(v).
    let weights = torch.stack([| omega.neg(); omega |], 1L).to_type(dtype)
    let minusGamma = Scalar.op_Implicit -gamma
    let one = Scalar.op_Implicit 1.0
    let x0 =
        use generator = new torch.Generator(uint64 seed)
        torch.randn([| int64 n |], dtype = dtype, generator = generator)

    member _.X0 = x0
    member _.Dimension = n

    /// f(t, x) = A x.
    member _.Field (_: float) (x: Tensor) : Tensor =
        use v = x.view(-1L, 2L)
        use flipped = v.flip(1L)
        use damped = v.mul(minusGamma)
        use dx = torch.addcmul(damped, weights, flipped, one)
        dx.view(-1L)

    /// The exact solution at t (float64).
    member _.Exact(t: float) : Tensor =
        use _ = torch.NewDisposeScope()
        let v = x0.to_type(torch.float64).view(-1L, 2L)
        let a, b = v.select(1L, 0L), v.select(1L, 1L)
        let angle: Tensor = omega * t
        let c, s = angle.cos(), angle.sin()
        let decay = Math.Exp(-gamma * t)
        torch.stack([| (a * c - b * s) * decay; (a * s + b * c) * decay |], 1L).view(-1L).MoveToOuterDisposeScope()

    interface IDisposable with
        member _.Dispose() =
            omega.Dispose()
            weights.Dispose()
            minusGamma.Dispose()
            one.Dispose()
            x0.Dispose()
