/// A running loss integrated alongside the state: the augmented system d/dt [x; q] = [f(t, x); l(t, x)], q(t0) = 0,
/// so q(t1) = ∫ l dt (Massaroli et al. 2020, §2.3 of our spec; torchdyn's integral-loss autograd path).
module internal NeuralOde.Core.RunningLoss

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The augmented vector field on the flat state [x.flatten(); q].
let augmentedField (f: VectorField) (loss: IntegralLoss) (shape: int64[]) : VectorField =
    let n = FlatState.numel shape
    fun t y ->
        // What is made here is freed with this scope, the result kept; what f and l return but do not own (a
        // captured tensor) is left alone.
        use scope = torch.NewDisposeScope()
        let x = (use head = y.narrow(0L, 0L, n) in head.view(shape))
        let fx = f t x
        let lx = loss t x
        if lx.numel() <> 1L then
            raise (System.ArgumentException($"The integral loss must return a single number (a 0-dim tensor summed over the batch) at t = {t}; it returned shape {TensorOps.shapeText lx}."))
        let flat = fx.reshape(-1L)
        let l1 = (use one = lx.reshape(1L) in one.to_type(y.dtype))
        torch.cat([| flat; l1 |], 0L).MoveToOuterDisposeScope()

/// The augmented initial state [x0.flatten(); 0].
let initial (x0: Tensor) =
    use zero = torch.zeros([| 1L |], dtype = x0.dtype, device = x0.device)
    FlatState.pack x0.dtype [| x0; zero |]

/// Splits stacked augmented states [T; n + 1] into the states [T; shape] and the final integral (0-dim).
let split (shape: int64[]) (states: Tensor) =
    let n = FlatState.numel shape
    let count = states.shape[0]
    let xs = (use head = states.narrow(1L, 0L, n) in head.reshape(Array.append [| count |] shape))
    let integral = states[count - 1L, n]
    xs, integral
