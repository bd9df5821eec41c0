/// The asynchronous leapfrog integrator for general fields dz/dt = f(t, z) (Zhuang, Dvornek, Tatikonda & Duncan 2021,
/// "MALI: a memory-efficient and reverse-accurate integrator for Neural ODEs"; torchdyn's AsynchronousLeapfrog). The
/// state carries an approximation v of dz/dt; one step of size h from (z, v) at t is
///   z½ = z + (h/2) v,   v′ = 2 f(t + h/2, z½) − v,   z′ = z½ + (h/2) v′,
/// second order, one evaluation of f per step, and exactly invertible: from (z′, v′) at t + h the same formulas with
/// −h give back (z, v) — so a backward pass can reconstruct the forward trajectory instead of storing it.
module NeuralOde.Core.AsyncLeapfrog

open System
open TorchSharp

/// One step of size h from (z, v) at time t: (z′, v′). With a negative h it is the exact inverse of the step that
/// ended at (z, v).
let step (f: VectorField) (t: float) (h: float) (z: torch.Tensor) (v: torch.Tensor) : torch.Tensor * torch.Tensor =
    use scope = torch.NewDisposeScope()
    let half = Internal.TensorOps.addScaled z v (0.5 * h)
    let slope = f (t + 0.5 * h) half
    if isNull slope || slope.shape <> z.shape then
        let got = if isNull slope then "null" else Internal.TensorOps.shapeText slope
        raise (ArgumentException($"The vector field must return a tensor of the state's shape {Internal.TensorOps.shapeText z} at t = {t + 0.5 * h}; it returned {got}.", "field"))
    let v' = Internal.TensorOps.addScaled (Internal.TensorOps.scale slope 2.0) v -1.0
    let z' = Internal.TensorOps.addScaled half v' (0.5 * h)
    z'.MoveToOuterDisposeScope(), v'.MoveToOuterDisposeScope()

/// The states z at t0, t0 + h, …, t1 of dz/dt = f(t, z) from z0 by `steps` asynchronous leapfrog steps over [t0, t1]
/// ([steps + 1, ...z0.shape]), and the final velocity v. v starts at f(t0, z0). Differentiable by autograd when z0 or
/// the field's tensors require grad.
let solve (f: VectorField) (z0: torch.Tensor) (t0: float) (t1: float) (steps: int) : torch.Tensor * torch.Tensor =
    if isNull (box f) then raise (ArgumentNullException("field"))
    if isNull z0 then raise (ArgumentNullException("z0"))
    Internal.Guard.span t0 t1
    Internal.Guard.stepCount "steps" 100_000_000 steps
    let h = (t1 - t0) / float steps
    let states = Collections.Generic.List<torch.Tensor>([ z0.alias() ])
    let mutable z = states[0]
    let first = f t0 z0
    if isNull first || first.shape <> z0.shape then
        for s in states do s.Dispose()
        raise (ArgumentException($"The vector field must return a tensor of the state's shape {Internal.TensorOps.shapeText z0} at t = {t0}.", "field"))
    // An alias: the field may return a tensor it does not own (its input, a captured constant), which is not ours to free.
    let mutable v = first.alias()
    try
        for k in 0 .. steps - 1 do
            let z', v' = step f (t0 + float k * h) h z v
            v.Dispose()
            z <- z'
            v <- v'
            states.Add z'
        torch.stack(states, 0L), v.alias()
    finally
        v.Dispose()
        for s in states do s.Dispose()
