/// Gradients by autograd through the solver agree with central finite differences (float64).
module NeuralOde.Tests.Solve.AutogradTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

/// Loss Σ x(1)² for dx/dt = tanh(x W), as a function of x0 and W.
let private loss (solver: ButcherTableau) control (x0: torch.Tensor) (w: torch.Tensor) =
    let f: VectorField = fun _ x -> x.matmul(w).tanh()
    use solution = Ode.odeint f x0 [| 0.0; 0.5; 1.0 |] solver control
    solution.States.square().sum()

/// Central differences with step eps, evaluated without building a graph.
let private finiteDifference (eps: float) (value: torch.Tensor -> float) (x: torch.Tensor) =
    let flat = Tensors.toArray x
    Array.init flat.Length (fun i ->
        let bump d =
            let v = Array.copy flat
            v[i] <- v[i] + d
            use flat = torch.tensor(v, dtype = torch.float64)
            use t = flat.reshape(x.shape)
            use _ = torch.no_grad()
            value t
        (bump eps - bump -eps) / (2.0 * eps))

[<Tests>]
let tests =
    testList "Solve/autograd" [
        // Adaptive step choice is not differentiated, so its finite differences use a tight tolerance and a larger eps
        // to keep step-selection jumps (≈ tol/eps) below the 1e-6 criterion.
        for solver, control, eps in [ Solvers.rk4, StepControl.steps 10, 1e-6; Solvers.dopri5, StepControl.adaptive 1e-12 1e-14, 1e-4 ] do
            test $"{solver.Name}: gradients w.r.t. x0 and parameters match finite differences" {
                use g = torch.Generator(7UL)
                use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = g).requires_grad_(true)
                use w = torch.randn([| 2L; 2L |], dtype = torch.float64, generator = g).requires_grad_(true)
                use l = loss solver control x0 w
                l.backward()
                let fdX = finiteDifference eps (fun x -> (use v = loss solver control x w in v.ToDouble())) x0
                let fdW = finiteDifference eps (fun ww -> (use v = loss solver control x0 ww in v.ToDouble())) w
                let close (a: float[]) (b: float[]) = Array.iter2 (fun x y -> Expect.isLessThan (abs (x - y)) (1e-6 * (1.0 + abs y)) "autograd vs FD") a b
                close (Tensors.toArray x0.grad) fdX
                close (Tensors.toArray w.grad) fdW
            }
    ]
