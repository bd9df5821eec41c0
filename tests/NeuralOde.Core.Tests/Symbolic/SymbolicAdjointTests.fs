/// The adjoint method with the symbolically derived adjoint system, evaluated without an autograd graph, on the
/// paper-spec §2.4 test vector (a scalar Galerkin field; reference values from an independent pure-Python RK4 with
/// 4000 steps, agreeing with central finite differences), and against autograd through the solver on a random
/// matrix field; and on random Galerkin fields (basis, width, activation) against Corollary 1 by quadrature
/// (spectralConverged) and autograd through the solver.
module NeuralOde.Tests.Symbolic.SymbolicAdjointTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

let private tight = StepControl.adaptive 1e-11 1e-13

/// A random Galerkin field: the basis, the state's width, the activation, the batch and the seed.
type GalerkinCase = { Basis: Basis; Width: int; Activation: Fn; Batch: int; Seed: int }

let private galerkinGen =
    gen {
        let! basis = Gen.elements [ Basis.fourier 1 1.0; Basis.fourier 2 1.0; Basis.legendre 3 1.0; Basis.chebyshev 4 1.0; Basis.polynomial 2 1.0 ]
        let! width = Gen.choose (1, 3)
        let! activation = Gen.elements [ Tanh; Sigmoid; Sin; Softplus ]
        let! batch = Gen.choose (1, 3)
        let! seed = Gen.choose (0, 100_000)
        return { Basis = basis; Width = width; Activation = activation; Batch = batch; Seed = seed }
    }

type private GalerkinArbitraries =
    static member Case() = Arb.fromGen galerkinGen

let private galerkinConfig = { FsCheckConfig.defaultConfig with maxTest = 10; arbitrary = [ typeof<GalerkinArbitraries> ] }

[<Tests>]
let tests =
    testList "Symbolic/adjoint" [
        test "the §2.4 test vector: dℓ/dx and dℓ/dα of the scalar Galerkin field" {
            // θ(s) = α0 + α1 cos 2πs + α2 sin 2πs, f = θ z + sin z, l = (z − sin 2πs)², Φ = (z(1) − 1)², x = 0.5.
            let z, s = Expr.tensor "z", Expr.scalar "s"
            let a0, a1, a2 = Expr.scalar "alpha0", Expr.scalar "alpha1", Expr.scalar "alpha2"
            let twoPiS = Mul(Const(2.0 * Math.PI), s)
            let theta = a0 + a1 * Expr.cos twoPiS + a2 * Expr.sin twoPiS
            let field = theta * z + Expr.sin z
            let loss = Expr.pow (z - Expr.sin twoPiS) 2.0
            let parameters =
                Map [ "alpha0", torch.tensor(-0.3, dtype = torch.float64); "alpha1", torch.tensor(0.8, dtype = torch.float64)
                      "alpha2", torch.tensor(-0.5, dtype = torch.float64) ]
            use x0 = torch.tensor([| 0.5 |], dtype = torch.float64)
            let r = SymbolicAdjoint.gradients field "z" (Some "s") parameters (Some loss) (fun zS -> (zS - 1.0) * 2.0) x0 (0.0, 1.0) Solvers.dopri5 tight
            let total = ((r.Final.ToDouble() - 1.0) ** 2.0) + r.Integral
            Expect.floatClose { absolute = 1e-9; relative = 1e-9 } total 0.9769799014540185 "ℓ"
            Expect.floatClose { absolute = 1e-8; relative = 1e-8 } (r.StateGradient.ToDouble()) 1.4311080079 "dℓ/dx = a(0)"
            let expected = [ "alpha0", 0.5779161021; "alpha1", -0.1145267664; "alpha2", 0.1098826299 ]
            for name, value in expected do
                Expect.floatClose { absolute = 1e-8; relative = 1e-8 } (r.ParameterGradients[name].ToDouble()) value $"dℓ/d{name}"
        }
        test "a Galerkin field tanh(z W(s)), W(s) = Σ_j α_j ψ_j(s): the symbolic spectral gradient equals autograd" {
            // Corollary 1 symbolically: dL/dα_j is the μ_j of the derived adjoint system (aᵀ∂f/∂W(s) ψ_j(s)).
            let basis = Basis.fourier 1 1.0
            use g = torch.Generator(17UL)
            let z, s = Expr.tensor "z", Expr.scalar "s"
            let names = [ for j in 0 .. basis.Terms - 1 -> $"alpha{j}" ]
            let w = Expr.galerkin basis (names |> List.map Expr.tensor) s
            let field = Expr.tanh (Expr.matmul z w)
            let alphas = names |> List.map (fun n -> n, torch.randn([| 2L; 2L |], dtype = torch.float64, generator = g) * 0.6)
            use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = g)
            let r = SymbolicAdjoint.gradients field "z" (Some "s") (Map alphas) None (fun zS -> zS * 2.0) x0 (0.0, 1.0) Solvers.dopri5 tight
            let leaves = alphas |> List.map (fun (_, a) -> a.detach().requires_grad_(true))
            let f: VectorField =
                fun t x ->
                    let psi = Basis.valuesAt basis t
                    let weight = List.mapi (fun j (a: torch.Tensor) -> a * psi[j]) leaves |> List.reduce (+)
                    x.matmul(weight).tanh()
            use solution = Ode.odeint f x0 [| 0.0; 1.0 |] Solvers.dopri5 tight
            use loss = solution.Final.square().sum()
            loss.backward()
            for (name, _), leaf in List.zip alphas leaves do
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray r.ParameterGradients[name]) (Tensors.toArray leaf.grad)) 1e-8 $"dL/d{name}"
            Expect.stringContains (Render.text field) "psi_2(s)" "ψ_j(s) in the expression"
        }
        testPropertyWithConfig galerkinConfig "random GalLinear fields: symbolic spectral gradient = spectralConverged (Corollary 1 by quadrature) = autograd" <| fun (c: GalerkinCase) ->
            // f(s, z) = σ(z W(s)ᵀ + b(s)) with the layer's coefficients split per basis function:
            // W_j = α[0 : in·out, j] viewed [out, in], b_j = α[in·out :, j] viewed [1, out].
            use scope = torch.NewDisposeScope()
            let basis = c.Basis
            let width = int64 c.Width
            use layer = new GalLinear(width, width, basis, torch.float64)
            use g = torch.Generator(uint64 c.Seed)
            (use _ = torch.no_grad()
             use init = torch.randn(layer.Coefficients.shape, dtype = torch.float64, generator = g) * 0.6
             layer.Coefficients.copy_(init) |> ignore)
            let x0 = torch.randn([| int64 c.Batch; width |], dtype = torch.float64, generator = g)
            let activate (u: torch.Tensor) =
                match c.Activation with
                | Tanh -> u.tanh() | Sigmoid -> u.sigmoid() | Sin -> u.sin() | _ -> torch.nn.functional.softplus(u)
            let field: VectorField = fun s x -> activate (layer.forward(x, s))
            let final = (use _ = torch.no_grad() in (Ode.odeint field x0 [| 0.0; 1.0 |] Solvers.dopri5 tight).Final.clone())
            let terminal = final * 2.0
            let quadrature = InfiniteDimensionalGradient.spectralConverged basis 1e-10 field (fun () -> layer.LastWeights) x0 terminal None Solvers.dopri5 tight
            // Autograd through the solver: L = Σ z(1)².
            let leaf = layer.Coefficients
            leaf.grad <- null
            (use solution = Ode.odeint field x0 [| 0.0; 1.0 |] Solvers.dopri5 tight
             use loss = solution.Final.square().sum()
             loss.backward())
            // The same field symbolically.
            let z, s = Expr.tensor "z", Expr.scalar "s"
            let wNames = [ for j in 0 .. basis.Terms - 1 -> $"W{j}" ]
            let bNames = [ for j in 0 .. basis.Terms - 1 -> $"b{j}" ]
            let w = Expr.galerkin basis (wNames |> List.map Expr.tensor) s
            let b = Expr.galerkin basis (bNames |> List.map Expr.tensor) s
            let symbolicField = Apply(c.Activation, Add(Expr.matmul z (Expr.transpose w), b))
            let alpha = layer.Coefficients.detach()
            let parameters =
                Map [ for j in 0 .. basis.Terms - 1 do
                        yield wNames[j], alpha.narrow(0L, 0L, width * width).select(1L, int64 j).reshape(width, width).contiguous()
                        yield bNames[j], alpha.narrow(0L, width * width, width).select(1L, int64 j).reshape(1L, width).contiguous() ]
            let r = SymbolicAdjoint.gradients symbolicField "z" (Some "s") parameters None (fun zS -> zS * 2.0) x0 (0.0, 1.0) Solvers.dopri5 tight
            for j in 0 .. basis.Terms - 1 do
                let symbolic = Array.append (Tensors.toArray r.ParameterGradients[wNames[j]]) (Tensors.toArray r.ParameterGradients[bNames[j]])
                Expect.isLessThan (Tensors.relativeError symbolic (Tensors.toArray (quadrature.select(1L, int64 j)))) 1e-7 $"dL/dα_{j} ({basis}): symbolic vs spectralConverged"
                Expect.isLessThan (Tensors.relativeError symbolic (Tensors.toArray (leaf.grad.select(1L, int64 j)))) 1e-7 $"dL/dα_{j} ({basis}): symbolic vs autograd"
        test "a matrix field tanh(z W) ⊙ c: the symbolic adjoint equals autograd through the solver" {
            use g = torch.Generator(21UL)
            let field = Mul(Expr.tanh (Expr.matmul (Expr.tensor "z") (Expr.tensor "W")), Expr.scalar "c")
            let loss = Expr.sum (Mul(Expr.tensor "z", Expr.tensor "z"))
            use w = torch.randn([| 3L; 3L |], dtype = torch.float64, generator = g) * 0.8
            use c = torch.tensor(1.3, dtype = torch.float64)
            use x0 = torch.randn([| 4L; 3L |], dtype = torch.float64, generator = g)
            let r = SymbolicAdjoint.gradients field "z" None (Map [ "W", w; "c", c ]) (Some loss) (fun zS -> zS * 2.0) x0 (0.0, 1.0) Solvers.dopri5 tight
            // Autograd: L = Σ z(1)² + ∫ Σ z² ds through Dopri5.
            use wl = w.detach().requires_grad_(true)
            use cl = c.detach().requires_grad_(true)
            use xl = x0.detach().requires_grad_(true)
            let problem =
                OdeProblem.create (fun _ z -> z.matmul(wl).tanh() * cl) xl [| 0.0; 1.0 |]
                |> OdeProblem.withIntegralLoss (fun _ z -> z.square().sum())
            use solution = Ode.solve problem Solvers.dopri5 tight
            use lossValue = solution.Final.square().sum() + solution.Integral.Value
            lossValue.backward()
            let compare (name: string) (expected: torch.Tensor) (actual: torch.Tensor) =
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray actual) (Tensors.toArray expected)) 1e-8 name
            compare "dL/dx0" xl.grad r.StateGradient
            compare "dL/dW" wl.grad r.ParameterGradients["W"]
            compare "dL/dc" cl.grad r.ParameterGradients["c"]
        }
    ]
