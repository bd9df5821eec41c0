/// Gradients with known answers: the paper spec's §2.4 test vector (a scalar Galerkin Neural ODE with terminal and
/// integral loss, reference by a 4000-step RK4 adjoint and by finite differences) and the hand-derived linear
/// system with a quadratic integral loss (Support/LinearQuadratic.fs).
module NeuralOde.Tests.Sensitivity.KnownAnswerTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

let private tight = Sensitivities.tight

/// §2.4: f(s, z) = θ(s) z + sin z, θ(s) = α·[1, cos 2πs, sin 2πs]; ℓ = (z(1) − 1)² + ∫ (z − sin 2πs)² ds.
let private spec24 (sensitivity: Sensitivity) =
    use alpha = torch.tensor([| -0.3; 0.8; -0.5 |], dtype = torch.float64, requires_grad = true)
    use x0 = torch.tensor([| 0.5 |], dtype = torch.float64, requires_grad = true)
    use times = torch.tensor([| 0.0; 1.0 |], dtype = torch.float64, requires_grad = true)
    let basis (s: float) = torch.tensor([| 1.0; cos (2.0 * Math.PI * s); sin (2.0 * Math.PI * s) |], dtype = torch.float64)
    let f: VectorField = fun s z -> (use psi = basis s in (alpha * psi).sum() * z + z.sin())
    let l: IntegralLoss = fun s z -> (z - sin (2.0 * Math.PI * s)).square().sum()
    let problem =
        OdeProblem.create f x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ alpha ] |> OdeProblem.withIntegralLoss l
    let problem = if Sensitivities.isAutograd sensitivity then problem else problem |> OdeProblem.withTimeTensor times
    use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
    use loss = (solution.Final - 1.0).square().sum() + solution.Integral.Value
    loss.backward()
    let timeGrad = if isNull times.grad then None else Some(Tensors.toArray times.grad)
    loss.ToDouble(), x0.grad.ToDouble(), Tensors.toArray alpha.grad, timeGrad

let private linearQuadratic (sensitivity: Sensitivity) (k: LinearQuadratic.Case) =
    use a = torch.tensor([| k.A |], dtype = torch.float64, requires_grad = true)
    use x0 = torch.tensor([| k.X0 |], dtype = torch.float64, requires_grad = true)
    use times = torch.tensor([| k.T0; k.T1 |], dtype = torch.float64, requires_grad = true)
    let problem =
        OdeProblem.create (fun _ x -> a * x) x0 [| k.T0; k.T1 |]
        |> OdeProblem.withParameters [ a ]
        |> OdeProblem.withIntegralLoss (fun _ x -> x.square().sum() * k.Q)
    let problem = if Sensitivities.isAutograd sensitivity then problem else problem |> OdeProblem.withTimeTensor times
    use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
    use loss = solution.Final.sum() * k.C + solution.Integral.Value
    loss.backward()
    loss.ToDouble(), x0.grad.ToDouble(), a.grad.ToDouble(), (if isNull times.grad then None else Some(Tensors.toArray times.grad))

let private close (expected: float) (actual: float) (what: string) =
    Expect.isLessThan (abs (actual - expected)) (1e-8 * (1.0 + abs expected)) $"{what}: expected {expected}, got {actual}"

[<Tests>]
let tests =
    testList "Sensitivity/known answers" [
        for name, sensitivity in Sensitivities.all do
            test $"{name}: the spec's §2.4 Galerkin test vector" {
                let loss, dx, dAlpha, dTimes = spec24 sensitivity
                close 0.9769799014540185 loss "ℓ"
                close 1.4311080079 dx "dℓ/dx"
                Array.iter2 (fun e a -> close e a "dℓ/dα") [| 0.5779161021; -0.1145267664; 0.1098826299 |] dAlpha
                // The spec's end-time sensitivity (by its own RK4 adjoint; its finite difference gives 0.7301706615).
                dTimes |> Option.iter (fun g -> Expect.isLessThan (abs (g[1] - 0.7301706560)) 1e-8 $"dℓ/dS = {g[1]}")
            }
            test $"{name}: linear system with a quadratic integral loss, against the hand derivation" {
                let k = LinearQuadratic.example
                let loss, dx0, da, dTimes = linearQuadratic sensitivity k
                close (LinearQuadratic.loss k) loss "L"
                close (LinearQuadratic.dLdx0 k) dx0 "dL/dx0"
                close (LinearQuadratic.dLda k) da "dL/da"
                dTimes |> Option.iter (fun g ->
                    close (LinearQuadratic.dLdt0 k) g[0] "dL/dt0"
                    close (LinearQuadratic.dLdt1 k) g[1] "dL/dt1")
            }
    ]
