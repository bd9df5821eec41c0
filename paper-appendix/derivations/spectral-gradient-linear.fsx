// The spectral gradient (Corollary 1 of Dissecting Neural ODEs) of a small linear example, by hand, checked against
// the library's adjoint, against the quadrature of the Theorem 1 functional gradient, and against the closed form the
// symbolic layer derives from the field (ClosedForm.linearSolution and its VJP).
// Run after a build (`dotnet fsi build.fsx build`):  dotnet fsi paper-appendix/derivations/spectral-gradient-linear.fsx
//
// Example. Scalar state z, depth s ∈ [0, 1], Galerkin parameter θ(s) = Σ_j α_j ψ_j(s) on the Legendre basis
// ψ_j(s) = P_j(2s − 1), j = 0, 1, 2; vector field f(s, z) = θ(s) z; loss L = z(1)²/2.
//
// By hand.
//   z(s) = z0 exp(∫_0^s θ) = z0 exp(Σ_j α_j Ψ_j(s)),  Ψ_j(s) = ∫_0^s ψ_j.
//   At s = 1: Ψ_0(1) = 1 and Ψ_j(1) = 0 for j ≥ 1 (Legendre polynomials integrate to zero for j ≥ 1), so
//   z(1) = z0 e^{α_0}, and dL/dα_j = z(1) · ∂z(1)/∂α_j = z(1)² Ψ_j(1) = (z0² e^{2α_0}, 0, 0).
// By Theorem 1. The adjoint a(s) = ∂L/∂z(s) = z(1)·∂z(1)/∂z(s) = z(1)²/z(s), and ∂f/∂θ(s) = z(s), so
//   δL/δθ(s) = a(s) z(s) = z(1)²,   a constant in s; and by Corollary 1
//   dL/dα_j = ∫_0^1 z(1)² ψ_j(s) ds = z(1)² Ψ_j(1), the same.
// The zero gradients for j ≥ 1 are the point of the example: a depth-varying perturbation orthogonal to the
// constant cannot change a loss that depends only on ∫θ.
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/MathNet.Numerics.dll"
// A script that references built DLLs (not the package) loads the native backend itself, before TorchSharp does.
NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore

open TorchSharp
open NeuralOde.Core

let basis = Basis.legendre 3 1.0
let alpha0, z0 = [| 0.4; -0.7; 0.25 |], 1.5
let byHand = [| z0 * z0 * exp (2.0 * alpha0[0]); 0.0; 0.0 |]

let alpha = torch.tensor(alpha0, dtype = torch.float64).reshape(1L, 3L).requires_grad_(true)
let x0 = torch.tensor([| z0 |], dtype = torch.float64).reshape(1L, 1L)
let mutable lastTheta: torch.Tensor = null
let field: VectorField =
    fun s z ->
        let theta = alpha.matmul(torch.tensor(basis.Values s, dtype = torch.float64))
        lastTheta <- theta
        theta * z
let control = StepControl.adaptive 1e-11 1e-13

let problem = OdeProblem.create field x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ alpha ]
let solution = Ode.solveWith Sensitivity.adjoint problem Solvers.dopri5 control
let loss = solution.Final.square().sum() * 0.5
loss.backward()
let byAdjoint = alpha.grad.data<float>().ToArray()

let zS = (use _ = torch.no_grad() in solution.Final.detach().clone())
let byTheorem1 =
    (InfiniteDimensionalGradient.spectralConverged basis 1e-10 field (fun () -> lastTheta) x0 zS None Solvers.dopri5 control).data<float>().ToArray()
let constant =
    (InfiniteDimensionalGradient.along field (fun () -> lastTheta) x0 (0.0, 1.0) zS None [| 0.1; 0.5; 0.9 |] Solvers.dopri5 control).data<float>().ToArray()

// Symbolically: the closed form z(1) = z0 exp(Σ_j α_j Ψ_j(1)) derived from the field as written, and its VJP with
// the cotangent ∂L/∂z(1) = z(1) — Corollary 1 in the basis integrals, with nothing written by hand.
let bySymbolic =
    let open' = NeuralOde.Core.Symbolic.Expr.tensor
    let z, s = open' "z", NeuralOde.Core.Symbolic.Expr.scalar "s"
    let names = [ for j in 0 .. 2 -> $"alpha{j}" ]
    let field = NeuralOde.Core.Symbolic.Mul(NeuralOde.Core.Symbolic.Expr.galerkin basis (names |> List.map open') s, z)
    let solution =
        (NeuralOde.Core.Symbolic.ClosedForm.linearSolution field "z" "s" (open' "z0") (NeuralOde.Core.Symbolic.Const 1.0)).Value
    let gradients = NeuralOde.Core.Symbolic.Derivative.vjp solution solution
    printfn "derived: z(1) = %s" (NeuralOde.Core.Symbolic.Render.text solution)
    printfn "derived: dL/dα_0 = %s" (NeuralOde.Core.Symbolic.Render.latex gradients["alpha0"])
    let env = Map([ for j in 0 .. 2 -> names[j], torch.tensor(alpha0[j], dtype = torch.float64) ] @ [ "z0", torch.tensor(z0, dtype = torch.float64) ])
    names |> List.map (fun n -> (NeuralOde.Core.Symbolic.Evaluate.evaluate env gradients[n]).ToDouble()) |> Array.ofList

printfn "Legendre basis, α = %A, z0 = %g, L = z(1)²/2" alpha0 z0
printfn "δL/δθ(s) at s = 0.1, 0.5, 0.9 (Theorem 1; by hand the constant z(1)² = %.12f): %A" byHand[0] constant
printfn "%-26s %18s %18s %18s" "dL/dα" "j = 0" "j = 1" "j = 2"
for name, g in [ "by hand", byHand; "adjoint (Corollary 1)", byAdjoint; "Theorem 1 + quadrature", byTheorem1; "symbolic closed form", bySymbolic ] do
    printfn "%-26s %18.12f %18.12f %18.12f" name g[0] g[1] g[2]
let worst =
    [ byAdjoint; byTheorem1; constant; bySymbolic ]
    |> List.map (fun g -> Array.mapi (fun j x -> abs (x - (if g.Length = 3 && obj.ReferenceEquals(g, constant) then byHand[0] else byHand[j]))) g |> Array.max)
    |> List.max
printfn "largest difference from the hand derivation: %.2e" worst
if worst > 1e-8 then
    eprintfn "MISMATCH"
    exit 1
