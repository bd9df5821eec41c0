/// Corollary 1 and Theorem 1 verified against autograd (float64, FsCheck over bases, numbers of terms, widths, depth
/// spans and losses): the adjoint's dℓ/dα (Corollary 1 computed during the backward solve) equals autograd's, and the
/// Theorem 1 functional gradient projected on the basis by quadrature equals them too.
module NeuralOde.Tests.Sensitivity.GalerkinGradientTests

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

type GalerkinCase =
    { Seed: int; Basis: string; Terms: int; Dim: int; Hidden: int; Batch: int; Integral: bool; Span: float }

    /// The basis on the depth domain [0, Span].
    member c.MakeBasis() =
        if c.Basis = "fourier" then Basis.fourier (max 1 (c.Terms / 2)) c.Span else (Basis.byName c.Basis) c.Terms c.Span

let private caseGen =
    gen {
        let! seed = Gen.choose (0, 1_000_000)
        let! basis = Gen.elements [ "fourier"; "polynomial"; "chebyshev"; "legendre" ]
        let! terms = Gen.choose (2, 5)
        let! dim = Gen.choose (1, 2)
        let! hidden = Gen.choose (2, 4)
        let! batch = Gen.choose (1, 3)
        let! integral = Gen.elements [ false; true ]
        let! span = Gen.elements [ 0.5; 1.0; 2.0 ]
        return { Seed = seed; Basis = basis; Terms = terms; Dim = dim; Hidden = hidden; Batch = batch; Integral = integral; Span = span }
    }

type Arbitraries =
    static member Case() = Arb.fromGen caseGen

let private tight = Sensitivities.tight
let private runningLoss = Sensitivities.runningLoss

/// A Galerkin vector field f(s, x) = tanh(GalLinear(x, s)) W2 with random coefficients.
type private Model(c: GalerkinCase) =
    let g = torch.Generator(uint64 c.Seed)
    let basis = c.MakeBasis()
    let layer = new GalLinear(int64 c.Dim, int64 c.Hidden, basis, torch.float64)
    do
        use _ = torch.no_grad()
        use init = torch.randn(layer.Coefficients.shape, dtype = torch.float64, generator = g)
        layer.Coefficients.copy_(init * 0.6) |> ignore
    let w2 = torch.randn([| int64 c.Hidden; int64 c.Dim |], dtype = torch.float64, generator = g) * 0.7
    let x0 = torch.randn([| int64 c.Batch; int64 c.Dim |], dtype = torch.float64, generator = g)
    let field: VectorField = fun s x -> layer.forward(x, s).tanh().matmul(w2)

    member _.Layer = layer
    member _.Field = field
    member _.X0 = x0
    member _.Loss = if c.Integral then Some runningLoss else None

    /// dℓ/dα by the sensitivity, with ℓ = Σ x(1)² (+ ∫ l).
    member m.CoefficientGradient(sensitivity: Sensitivity) =
        layer.Coefficients.grad |> Option.ofObj |> Option.iter (fun g -> g.zero_() |> ignore)
        let problem = OdeProblem.create field x0 [| 0.0; c.Span |] |> OdeProblem.withParameters [ layer.Coefficients ]
        let problem = match m.Loss with Some l -> problem |> OdeProblem.withIntegralLoss l | None -> problem
        use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
        use terminal = solution.Final.square().sum()
        use loss = match solution.Integral with Some i -> terminal + i | None -> terminal.alias()
        loss.backward()
        Tensors.toArray layer.Coefficients.grad

    /// dℓ/dα by quadrature of the Theorem 1 gradient, nodes doubled until converged: fixed node counts (40, then 96)
    /// left quadrature errors of ~1e-6 relative on fields whose tanh saturates quickly (found by this property).
    member m.SpectralFromTheorem1() =
        use solution = (use _ = torch.no_grad() in Ode.odeint field x0 [| 0.0; c.Span |] Solvers.dopri5 tight)
        use terminalGradient = solution.Final * 2.0
        use g = InfiniteDimensionalGradient.spectralConverged basis 1e-9 field (fun () -> layer.LastWeights) x0 terminalGradient m.Loss Solvers.dopri5 tight
        Tensors.toArray g

let private config = { FsCheckConfig.defaultConfig with maxTest = 12; arbitrary = [ typeof<Arbitraries> ] }

[<Tests>]
let tests =
    testList "Sensitivity/Galerkin" [
        testPropertyWithConfig config "Corollary 1: the adjoint's spectral gradient equals autograd's" <| fun (c: GalerkinCase) ->
            let model = Model c
            let reference = model.CoefficientGradient Sensitivity.Autograd
            for name, sensitivity in Sensitivities.adjointMethods do
                let error = Tensors.relativeError (model.CoefficientGradient sensitivity) reference
                Expect.isLessThan error 1e-6 $"{name}: relative error {error:E2} for %A{c}"

        testPropertyWithConfig config "Theorem 1: the functional gradient projected on the basis equals the spectral gradient" <| fun (c: GalerkinCase) ->
            let model = Model c
            let reference = model.CoefficientGradient Sensitivity.Autograd
            let error = Tensors.relativeError (model.SpectralFromTheorem1()) reference
            Expect.isLessThan error 1e-6 $"relative error {error:E2} for %A{c}"

        test "GalLinear: weights at depth s are α ψ(s), laid out as [vec(W); b], and it starts at zero" {
            let basis = Basis.legendre 3 1.0
            use layer = new GalLinear(2L, 3L, basis, torch.float64)
            use x = torch.ones([| 1L; 2L |], dtype = torch.float64)
            Expect.equal (Tensors.toArray (layer.forward(x, 0.3))) [| 0.0; 0.0; 0.0 |] "zero-initialised"
            Expect.sequenceEqual layer.Coefficients.shape [| 9L; 3L |] "(in + 1)·out rows, m columns"
            use _ = torch.no_grad()
            layer.Coefficients.copy_(torch.arange(27L, dtype = torch.float64).reshape(9L, 3L)) |> ignore
            let psi = basis.Values 0.3
            let theta = Array.init 9 (fun p -> Array.sum (Array.init 3 (fun j -> float (3 * p + j) * psi[j])))
            let expected = Array.init 3 (fun o -> theta[2 * o] + theta[2 * o + 1] + theta[6 + o])
            let got = Tensors.toArray (layer.forward(x, 0.3))
            Array.iter2 (fun e g -> Expect.floatClose Accuracy.veryHigh g e "y = x W(s)ᵀ + b(s)") expected got
        }
    ]

/// The closed form for fields linear in θ (SpectralClosedForm, derived symbolically) against the adjoint, autograd
/// and the quadrature of Theorem 1, for every basis.
[<Tests>]
let closedFormTests =
    testList "Sensitivity/Galerkin/closed form" [
        for basis in [ Basis.fourier 2 1.0; Basis.polynomial 4 1.0; Basis.chebyshev 4 1.0; Basis.legendre 4 1.0 ] do
            test $"{basis.Name}: dL/dα of f = θ(s) ⊙ z equals z(S)·Ψ(S) weighting, by every method" {
                use g = torch.Generator(99UL)
                use alpha = (torch.randn([| 3L; int64 basis.Terms |], dtype = torch.float64, generator = g) * 0.4).requires_grad_(true)
                use z0 = torch.randn([| 2L; 3L |], dtype = torch.float64, generator = g)
                let field: VectorField = fun s z -> (use psi = torch.tensor(basis.Values s, dtype = torch.float64) in alpha.matmul(psi)) * z
                use zS = SpectralClosedForm.diagonalLinearSolution basis alpha z0
                use exact = SpectralClosedForm.diagonalLinearGradient basis (alpha.detach()) z0 (zS.detach() * 2.0)
                for name, sensitivity in Sensitivities.all do
                    alpha.grad |> Option.ofObj |> Option.iter (fun gr -> gr.zero_() |> ignore)
                    let problem = OdeProblem.create field z0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ alpha ]
                    use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
                    Expect.isLessThan (Tensors.relativeError (Tensors.toArray solution.Final) (Tensors.toArray zS)) 1e-8 $"{name}: z(S)"
                    use loss = solution.Final.square().sum()
                    loss.backward()
                    Expect.isLessThan (Tensors.relativeError (Tensors.toArray alpha.grad) (Tensors.toArray exact)) 1e-8 $"{name}: dL/dα"
            }
        // A mismatch once reached libtorch (whose matmul aborted the process); the shapes are now checked first.
        test "coefficients with the wrong number of basis terms are refused by name, not a process abort" {
            let basis = Basis.legendre 4 1.0
            use alpha = torch.zeros([| 3L; 5L |], dtype = torch.float64)
            use z0 = torch.ones([| 2L; 3L |], dtype = torch.float64)
            let e = Raises.raises<System.ArgumentException> (fun () -> (SpectralClosedForm.diagonalLinearSolution basis alpha z0).Dispose())
            Expect.stringContains e.Message "alpha must be [n, 4]" "names the argument and the shape it needs"
            use alpha = torch.zeros([| 3L; 4L |], dtype = torch.float64)
            let e = Raises.raises<System.ArgumentException> (fun () -> (SpectralClosedForm.diagonalLinearSolution basis alpha (z0.t())).Dispose())
            Expect.stringContains e.Message "z0 must be [batch, 3]" "and z0"
        }
    ]

/// GalConv2d: the layer computes conv2d with its depth's kernel, and an image Galerkin Neural ODE's spectral
/// gradient by the adjoint and by Theorem 1 + quadrature equals autograd's.
[<Tests>]
let convolutionTests =
    testList "Sensitivity/Galerkin/convolution" [
        test "GalConv2d equals conv2d with the kernel and bias of its depth" {
            let basis = Basis.fourier 1 1.0
            use layer = new GalConv2d(2L, 3L, 3L, basis, 1L, 1L, torch.float64)
            Tensors.initialize 8 1.0 layer
            use g = torch.Generator(18UL)
            use x = torch.randn([| 2L; 2L; 5L; 5L |], dtype = torch.float64, generator = g)
            use y = layer.forward(x, 0.3)
            use w = layer.WeightsAt 0.3
            use kernel = w.narrow(0L, 0L, 54L).view(3L, 2L, 3L, 3L)
            use bias = w.narrow(0L, 54L, 3L)
            use expected = torch.nn.functional.conv2d(x, kernel, bias, padding = [| 1L; 1L |])
            Expect.sequenceEqual y.shape [| 2L; 3L; 5L; 5L |] "same padding"
            Expect.isLessThan (Tensors.maxAbsDiff y expected) 1e-12 "conv2d with θ(s)"
        }
        test "an image Galerkin Neural ODE: adjoint and Theorem 1 spectral gradients equal autograd's" {
            let basis = Basis.legendre 3 1.0
            use layer = new GalConv2d(2L, 2L, 3L, basis, 1L, 1L, torch.float64)
            Tensors.initialize 9 0.3 layer
            use g = torch.Generator(19UL)
            use x0 = torch.randn([| 2L; 2L; 4L; 4L |], dtype = torch.float64, generator = g)
            let field: VectorField = fun s x -> layer.forward(x, s).tanh()
            let gradientBy (sensitivity: Sensitivity) =
                layer.Coefficients.grad |> Option.ofObj |> Option.iter (fun gr -> gr.zero_() |> ignore)
                let problem = OdeProblem.create field x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ layer.Coefficients ]
                use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
                use loss = solution.Final.square().sum()
                loss.backward()
                Tensors.toArray layer.Coefficients.grad
            let reference = gradientBy Sensitivity.Autograd
            Expect.isLessThan (Tensors.relativeError (gradientBy Sensitivity.adjoint) reference) 1e-6 "adjoint"
            use solution = (use _ = torch.no_grad() in Ode.odeint field x0 [| 0.0; 1.0 |] Solvers.dopri5 tight)
            use terminal = solution.Final * 2.0
            use spectral = InfiniteDimensionalGradient.spectralConverged basis 1e-9 field (fun () -> layer.LastWeights) x0 terminal None Solvers.dopri5 tight
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray spectral) reference) 1e-6 "Theorem 1 + quadrature"
        }
    ]
