// A gradient derived by hand and checked against NeuralOde's adjoint methods.
// Run after a build (`dotnet fsi build.fsx build`):  dotnet fsi paper-appendix/derivations/linear-quadratic-adjoint.fsx
//
// Problem: x' = a x on [t0, t1], x(t0) = x0, loss L = c·x(t1) + q ∫_{t0}^{t1} x(t)² dt.
//
// Derivation. Let τ = t1 − t0. The solution is x(t) = x0 e^{a(t − t0)}, so
//   ∫_{t0}^{t1} x² dt = x0² ∫_0^τ e^{2as} ds = x0² (e^{2aτ} − 1)/(2a)
//   L = c x0 e^{aτ} + q x0² (e^{2aτ} − 1)/(2a)
// Differentiating:
//   ∂L/∂x0 = c e^{aτ} + q x0 (e^{2aτ} − 1)/a
//   ∂L/∂a  = c x0 τ e^{aτ} + q x0² ∂/∂a[(e^{2aτ} − 1)/(2a)]
//          = c x0 τ e^{aτ} + q x0² [2τ e^{2aτ}·2a − 2(e^{2aτ} − 1)]/(4a²)
//          = c x0 τ e^{aτ} + q x0² [τ e^{2aτ}/a − (e^{2aτ} − 1)/(2a²)]
//   ∂L/∂t1 = c a x0 e^{aτ} + q x0² e^{2aτ}
//   ∂L/∂t0 = −∂L/∂t1   (L depends on t0 and t1 only through τ)
// The adjoint route (Massaroli et al. 2020, Proposition 1): a(t1) = ∂L/∂x(t1) = c,
//   da/dt = −a·∂f/∂x − ∂l/∂x = −a·a_param − 2q x(t),  dμ/dt = −a·∂f/∂a = −a·x(t),
// gives ∂L/∂x0 = a(t0) and ∂L/∂a = μ(t0); the end-time derivative is a(t1)·f(x(t1)) + l(x(t1))
// = c·a x(t1) + q x(t1)², the same as ∂L/∂t1 above. The closed forms live in one file shared with the tests:
#load "../../tests/NeuralOde.Core.Tests/Support/LinearQuadratic.fs"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"
// A script that references built DLLs (not the package) loads the native backend itself, before TorchSharp does.
NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore

open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

let k = LinearQuadratic.example
printfn "x' = a x with a = %g, x0 = %g on [%g, %g]; L = %g·x(t1) + %g ∫ x² dt" k.A k.X0 k.T0 k.T1 k.C k.Q
printfn "%-8s %18s %18s %18s %18s %18s" "method" "L" "dL/dx0" "dL/da" "dL/dt0" "dL/dt1"
printfn "%-8s %18.12f %18.12f %18.12f %18.12f %18.12f" "by hand" (LinearQuadratic.loss k) (LinearQuadratic.dLdx0 k)
    (LinearQuadratic.dLda k) (LinearQuadratic.dLdt0 k) (LinearQuadratic.dLdt1 k)

let mutable worst = 0.0
for name, sensitivity in [ "adjoint", Sensitivity.adjoint; "interp.", Sensitivity.interpolatedAdjoint ] do
    let a = torch.tensor([| k.A |], dtype = torch.float64, requires_grad = true)
    let x0 = torch.tensor([| k.X0 |], dtype = torch.float64, requires_grad = true)
    let times = torch.tensor([| k.T0; k.T1 |], dtype = torch.float64, requires_grad = true)
    let problem =
        OdeProblem.create (fun _ x -> a * x) x0 [| k.T0; k.T1 |]
        |> OdeProblem.withParameters [ a ]
        |> OdeProblem.withIntegralLoss (fun _ x -> x.square().sum() * k.Q)
        |> OdeProblem.withTimeTensor times
    let solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-11 1e-13)
    let loss = solution.Final.sum() * k.C + solution.Integral.Value
    loss.backward()
    let got = [| loss.ToDouble(); x0.grad.ToDouble(); a.grad.ToDouble(); times.grad[0].ToDouble(); times.grad[1].ToDouble() |]
    let expected = [| LinearQuadratic.loss k; LinearQuadratic.dLdx0 k; LinearQuadratic.dLda k; LinearQuadratic.dLdt0 k; LinearQuadratic.dLdt1 k |]
    worst <- max worst (Array.map2 (fun g e -> abs (g - e) / (1.0 + abs e)) got expected |> Array.max)
    printfn "%-8s %18.12f %18.12f %18.12f %18.12f %18.12f" name got[0] got[1] got[2] got[3] got[4]

printfn "largest relative difference: %.2e" worst
if worst > 1e-8 then
    eprintfn "MISMATCH: the library's adjoint disagrees with the hand derivation"
    exit 1
