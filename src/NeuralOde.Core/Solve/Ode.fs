/// The front door: solve a problem with a solver (a tableau) under a step control.
module NeuralOde.Core.Ode

open TorchSharp

/// Solves `problem` with `solver` under `control`, with gradients by autograd through the solver's operations
/// (discretise-then-optimise): when x0 or tensors captured by the vector field require grad, the returned states
/// are differentiable. The states are on x0's device with x0's dtype.
let solve (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    Integrate.solve problem solver control

/// Shorthand: solve dx/dt = f(t, x) from x0 at times[0] with outputs at `times`.
let odeint (f: VectorField) (x0: torch.Tensor) (times: float[]) (solver: ButcherTableau) (control: StepControl) =
    solve (OdeProblem.create f x0 times) solver control
