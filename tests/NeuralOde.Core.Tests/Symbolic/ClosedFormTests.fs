/// Closed forms derived symbolically: dz/ds = θ(s) ⊙ z with θ(s) = Σ_j α_j ψ_j(s) solves to z(0) ⊙ exp(Σ_j α_j Ψ_j(S)),
/// and θ(s) z A (scalar θ, fixed A) to z(0) e^{(Σ_j c_j Ψ_j(S)) A} (gradients through the matrix exponential's Fréchet
/// derivative, against autograd through Dopri5);
/// its VJP is the spectral gradient in the basis integrals, equal to the formula written out by hand here
/// (Σ_batch ∂L/∂z(S) ⊙ z(S) Ψ(S)ᵀ), to SpectralClosedForm (which derives it) and to the symbolic adjoint's numerical solve.
module NeuralOde.Tests.Symbolic.ClosedFormTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

[<Tests>]
let tests =
    testList "Symbolic/closed forms" [
        test "the diagonal linear Galerkin field: derived closed form = the hand formula = SpectralClosedForm = the symbolic adjoint" {
            // Monomials: every Ψ_j(1) ≠ 0, so every coefficient moves z(S) (with Legendre, Ψ_1(1) = Ψ_2(1) = 0 and
            // those gradients vanish).
            let basis = Basis.polynomial 3 1.0
            let n = 4L
            use g = torch.Generator(29UL)
            use alpha = torch.randn([| n; 3L |], dtype = torch.float64, generator = g) * 0.5     // [n, m], as SpectralClosedForm
            use z0 = torch.randn([| 1L; n |], dtype = torch.float64, generator = g)
            let z, s = Expr.tensor "z", Expr.scalar "s"
            let names = [ for j in 0 .. 2 -> $"alpha{j}" ]
            let field = Mul(Expr.galerkin basis (names |> List.map Expr.tensor) s, z)
            let solution =
                match ClosedForm.linearSolution field "z" "s" (Expr.tensor "z0") (Expr.scalar "S") with
                | Some e -> e
                | None -> failtest "the diagonal linear field has a closed form"
            Expect.equal (Render.text solution) "z0 .* exp(alpha0 .* Psi_0(S) + alpha1 .* Psi_1(S) + alpha2 .* Psi_2(S))" "derived"
            let columns = names |> List.mapi (fun j name -> name, alpha.narrow(1L, int64 j, 1L).reshape(1L, n).contiguous())
            use horizon = torch.tensor(1.0, dtype = torch.float64)
            let env = Map(columns @ [ "z0", z0; "S", horizon ])
            use zS = Evaluate.evaluate env solution
            // By hand: z(S) = z0 ⊙ exp(α Ψ(S)), dL/dα = Σ_batch (∂L/∂z(S) ⊙ z(S)) Ψ(S)ᵀ.
            use integrals = torch.tensor(basis.Integrals 1.0, dtype = torch.float64)
            use exact = z0 * (alpha.mv(integrals)).exp()
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray zS) (Tensors.toArray exact)) 1e-13 "z(S)"
            use library = SpectralClosedForm.diagonalLinearSolution basis alpha z0
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray library) (Tensors.toArray exact)) 1e-13 "z(S) by SpectralClosedForm"
            // L = Σ z(S)²: the cotangent is 2 z(S).
            let gradients = Derivative.vjp solution (Mul(Const 2.0, solution))
            use byHand = (exact * exact * 2.0).sum(0L).unsqueeze(1L).mm(integrals.unsqueeze(0L))      // [n, m]
            use library = SpectralClosedForm.diagonalLinearGradient basis alpha z0 (exact * 2.0)
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray library) (Tensors.toArray byHand)) 1e-12 "dL/dα by SpectralClosedForm"
            let adjoint =
                SymbolicAdjoint.gradients field "z" (Some "s") (Map columns) None (fun zEnd -> zEnd * 2.0) z0 (0.0, 1.0)
                    Solvers.dopri5 (StepControl.adaptive 1e-11 1e-13)
            for j, name in List.indexed names do
                use derived = Evaluate.evaluate env gradients[name]
                use column = byHand.narrow(1L, int64 j, 1L).reshape(1L, n)
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray derived) (Tensors.toArray column)) 1e-12 $"dL/d{name}: derived closed form vs the hand formula"
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray adjoint.ParameterGradients[name]) (Tensors.toArray column)) 1e-8 $"dL/d{name}: vs the symbolic adjoint"
        }
        test "a scalar Galerkin θ(s) times a fixed matrix: z(S) = z(0) e^{(Σ_j c_j Ψ_j(S)) A}, its VJP = autograd through Dopri5" {
            // Monomials: every Ψ_j(1) ≠ 0, so no gradient is zero by symmetry (Fourier's Ψ_1(1) = Ψ_2(1) = 0).
            let basis = Basis.polynomial 3 1.0
            use g = torch.Generator(31UL)
            let z, s = Expr.tensor "z", Expr.scalar "s"
            let names = [ for j in 0 .. 2 -> $"c{j}" ]
            let field = Mul(Expr.galerkin basis (names |> List.map Expr.scalar) s, Expr.matmul z (Expr.tensor "A"))
            let solution =
                match ClosedForm.linearSolution field "z" "s" (Expr.tensor "z0") (Const 1.0) with
                | Some e -> e
                | None -> failtest "θ(s) z A has a closed form"
            Expect.stringContains (Render.text solution) "z0 @ expm(" "z(0) e^{...}"
            let cs = [ 0.4; -0.9; 0.6 ] |> List.map (fun c -> torch.tensor(c, dtype = torch.float64).requires_grad_(true))
            use a = (torch.randn([| 3L; 3L |], dtype = torch.float64, generator = g) * 0.5).requires_grad_(true)
            use z0 = torch.randn([| 2L; 3L |], dtype = torch.float64, generator = g)
            let env = Map(List.zip names cs @ [ "A", a; "z0", z0 ])
            use closed = Evaluate.evaluate env solution
            // Autograd through Dopri5 at a tight tolerance.
            let f: VectorField =
                fun t x ->
                    let psi = basis.Values t
                    let theta = List.mapi (fun j (c: torch.Tensor) -> c * psi[j]) cs |> List.reduce (+)
                    x.matmul(a) * theta
            use solution' = Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-12 1e-14)
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray closed) (Tensors.toArray solution'.Final)) 1e-9 "z(S)"
            use loss = solution'.Final.square().sum()
            let byAutograd = torch.autograd.grad([| loss |], Array.ofList (cs @ [ a ])) |> Seq.map Tensors.toArray |> Array.ofSeq
            let gradients = Derivative.vjp solution (Mul(Const 2.0, solution))
            for i, name in List.indexed (names @ [ "A" ]) do
                use symbolic = Evaluate.evaluate env gradients[name]
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray symbolic) byAutograd[i]) 1e-8 $"dL/d{name}"
            Expect.isNone (ClosedForm.linearSolution (Mul(Expr.galerkin basis (names |> List.map Expr.tensor) s, Expr.matmul z (Expr.tensor "A"))) "z" "s" (Expr.tensor "z0") (Const 1.0))
                "a tensor θ times a matrix does not commute: no closed form"
        }
        test "a field that is not linear in the state has no closed form here" {
            let z, s = Expr.tensor "z", Expr.scalar "s"
            let basis = Basis.fourier 1 1.0
            let field = Mul(Expr.galerkin basis [ Expr.scalar "a0"; Expr.scalar "a1"; Expr.scalar "a2" ] s, Expr.tanh z)
            Expect.isNone (ClosedForm.linearSolution field "z" "s" (Expr.tensor "z0") (Const 1.0)) "tanh z"
        }
    ]
