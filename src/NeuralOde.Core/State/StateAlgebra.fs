/// The state algebra the engine is written over: the few operations on solver states that the integration loop, the
/// Runge–Kutta step, dense output, the error norm and the adjoints need. Two instances: tensors (State/TensorAlgebra.fs,
/// any dtype and device, differentiable by autograd) and host buffers (State/BufferAlgebra.fs, float32/float64 arrays
/// with SIMD loops, for compiled field backends). The loop, the step and the adjoints exist once, over this interface.
namespace NeuralOde.Core.State

open System

/// Operations on states 'S of one solve (all of one length). Every operation that returns a state returns a new one,
/// owned by the caller, who hands it back with `Release` when done (the tensor instance disposes it, the buffer
/// instance returns it to its pool); states handed in are never modified, except by `AddScaledInPlace`.
type internal IStateAlgebra<'S when 'S: not struct> =
    /// y + h Σ_j w_j k_j over the j with w_j ≠ 0.
    abstract Combine: y: 'S * h: float * weights: float[] * ks: 'S[] -> 'S
    /// h Σ_j w_j k_j over the j with w_j ≠ 0 (zeros when every weight is 0).
    abstract WeightedSum: h: float * weights: float[] * ks: 'S[] -> 'S
    /// Σ_j c_j s_j.
    abstract Linear: coefficients: float[] * states: 'S[] -> 'S
    /// target += c·x, in place (target: a state of this solve that nothing else reads, and that no graph saved).
    abstract AddScaledInPlace: target: 'S * c: float * x: 'S -> unit
    /// A copy.
    abstract Copy: x: 'S -> 'S
    /// The scaled RMS error norm of step-size control (Hairer, Nørsett & Wanner, "Solving ODEs I", eq. (4.11)) over
    /// the first `channels` entries (all when negative: the seminorm takes the state's and adjoint's channels only):
    /// RMS of err / (atol + rtol·max(|y0|, |y1|)). NaN or Inf when err is.
    abstract ErrorNorm: rtol: float * atol: float * err: 'S * y0: 'S * y1: 'S * channels: int -> float
    /// RMS of (x − z) / (atol + rtol·|y0|) (z: null for none), for the first-step heuristic.
    abstract RmsScaled: x: 'S * z: 'S * y0: 'S * rtol: float * atol: float -> float
    /// Σ_i a_i b_i, on the host.
    abstract Dot: a: 'S * b: 'S -> float
    /// True when every entry is finite (the tensor instance waits for the device).
    abstract AllFinite: x: 'S -> bool
    /// The finiteness of a fixed step's result (from tStart to tEnd), checked now or later: the tensor instance keeps a
    /// flag per step on the device and reads them when `due` (an output is due) or its buffer is full, never a host
    /// wait per step. Returns the first step found non-finite, if any.
    abstract CheckLater: tStart: float * tEnd: float * y1: 'S * due: bool -> struct (float * float) voption
    /// Hands a state back (disposed or pooled): it must not be used after.
    abstract Release: x: 'S -> unit
    /// A scope for one step: what the step's field evaluations leave behind (a module's intermediate tensors) is freed
    /// when it ends, except the states passed to `Keep` inside it.
    abstract Scope: unit -> IDisposable
    /// Keeps a state made in the current step's scope alive after the scope (returns it).
    abstract Keep: x: 'S -> 'S
