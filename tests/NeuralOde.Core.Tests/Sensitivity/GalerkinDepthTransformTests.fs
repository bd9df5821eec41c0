/// torchdyn's trainable dilation d and shift h of the depth (θ(s) = α ψ(d·s + h)) in GalLinear and GalConv2d, float64:
/// off by default (today's layer and parameters); the weights at the transformed depth; dℓ/dd and dℓ/dh by autograd
/// against central finite differences of the same fixed-step solve; by every adjoint against autograd; and by the
/// chain rule on Theorem 1's functional gradient (InfiniteDimensionalGradient.dilationShiftConverged) against both.
module NeuralOde.Tests.Sensitivity.GalerkinDepthTransformTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private tight = Sensitivities.tight

/// f(s, x) = tanh(GalLinear(x, s)) W2 with random α, dilation 1.2 and shift 0.1 (s' ∈ [0.1, 1.3]: the bases
/// extrapolate past S = 1).
type private Model(basis: Basis, seed: int) =
    let g = torch.Generator(uint64 seed)
    let layer = new GalLinear(2L, 3L, basis, torch.float64, true, true)
    let dilation, shift = layer.Dilation.Value, layer.Shift.Value
    do
        use _ = torch.no_grad()
        use init = torch.randn(layer.Coefficients.shape, dtype = torch.float64, generator = g)
        layer.Coefficients.copy_(init * 0.6) |> ignore
        dilation.fill_(1.2) |> ignore
        shift.fill_(0.1) |> ignore
    let w2 = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = g) * 0.7
    let x0 = torch.randn([| 2L; 2L |], dtype = torch.float64, generator = g)
    let field: VectorField = fun s x -> layer.forward(x, s).tanh().matmul(w2)
    let parameters: torch.Tensor list = [ layer.Coefficients; dilation; shift ]

    member _.Layer = layer
    member _.Field = field
    member _.X0 = x0
    member _.Dilation = dilation
    member _.Shift = shift

    /// [dℓ/dd; dℓ/dh; dℓ/dα...] for ℓ = Σ x(1)² by the sensitivity.
    member _.Gradients (sensitivity: Sensitivity) (solver: ButcherTableau) (control: StepControl) =
        for p in parameters do p.grad <- null
        let problem = OdeProblem.create field x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters parameters
        use solution = Ode.solveWith sensitivity problem solver control
        use loss = solution.Final.square().sum()
        loss.backward()
        Array.concat [ Tensors.toArray dilation.grad; Tensors.toArray shift.grad; Tensors.toArray layer.Coefficients.grad ]

    /// ℓ with no graph.
    member _.Loss (solver: ButcherTableau) (control: StepControl) =
        use _ = torch.no_grad()
        use solution = Ode.odeint field x0 [| 0.0; 1.0 |] solver control
        solution.Final.square().sum().ToDouble()

    /// dℓ/d(parameter) by central differences, the parameter moved by ±eps and put back.
    member m.CentralDifference (parameter: torch.Tensor) (eps: float) solver control =
        let at (delta: float) =
            (use _ = torch.no_grad() in parameter.add_(Scalar.op_Implicit delta) |> ignore)
            let l = m.Loss solver control
            (use _ = torch.no_grad() in parameter.sub_(Scalar.op_Implicit delta) |> ignore)
            l
        (at eps - at -eps) / (2.0 * eps)

let private bases = [ Basis.legendre 3 1.0; Basis.fourier 1 1.0; Basis.gaussianRbf 3 1.0; Basis.multiquadricRbf 3 1.0 ]

[<Tests>]
let tests =
    testList "Sensitivity/Galerkin/dilation and shift" [
        test "off by default: only the coefficients are parameters, and the layers are today's" {
            use layer = new GalLinear(2L, 3L, Basis.legendre 3 1.0, torch.float64)
            Expect.equal [ for struct (name, _) in layer.named_parameters() -> name ] [ "coefficients" ] "GalLinear"
            Expect.isFalse layer.TransformsDepth "no transform"
            Expect.isNone layer.Dilation "no dilation"
            use conv = new GalConv2d(1L, 1L, 3L, Basis.legendre 3 1.0)
            Expect.equal (Seq.length (conv.parameters())) 1 "GalConv2d"
        }
        test "on: dilation 1 and shift 0 registered, the layer unchanged at the start, θ(s) = α ψ(d·s + h) once they move" {
            let basis = Basis.legendre 3 1.0
            use plain = new GalLinear(2L, 3L, basis, torch.float64)
            use layer = new GalLinear(2L, 3L, basis, torch.float64, true, true)
            Expect.equal [ for struct (n, _) in layer.named_parameters() -> n ] [ "coefficients"; "dilation"; "shift" ] "registered"
            Expect.equal (Tensors.toArray layer.Dilation.Value) [| 1.0 |] "d starts at 1"
            Expect.equal (Tensors.toArray layer.Shift.Value) [| 0.0 |] "h starts at 0"
            use _ = torch.no_grad()
            use alpha = torch.randn([| 9L; 3L |], dtype = torch.float64, generator = torch.Generator(4UL))
            plain.Coefficients.copy_(alpha) |> ignore
            layer.Coefficients.copy_(alpha) |> ignore
            use x = torch.ones([| 1L; 2L |], dtype = torch.float64)
            Expect.isLessThan (Tensors.maxAbsDiff (layer.forward(x, 0.3)) (plain.forward(x, 0.3))) 1e-15 "d = 1, h = 0: today's layer"
            layer.Dilation.Value.fill_(1.3) |> ignore
            layer.Shift.Value.fill_(-0.2) |> ignore
            use psi = Tensors.f64 (basis.Values (1.3 * 0.7 - 0.2))
            use expected = alpha.mv(psi)
            Expect.isLessThan (Tensors.maxAbsDiff (layer.WeightsAt 0.7) expected) 1e-15 "θ(0.7) = α ψ(0.71)"
            use conv = new GalConv2d(1L, 1L, 1L, basis, 1L, 0L, torch.float64, false, true)
            Expect.isNone conv.Dilation "GalConv2d: only the shift asked for"
            conv.Coefficients.copy_(alpha.narrow(0L, 0L, 2L)) |> ignore
            conv.Shift.Value.fill_(0.25) |> ignore
            use psiConv = Tensors.f64 (basis.Values 0.75)
            use expectedConv = alpha.narrow(0L, 0L, 2L).mv(psiConv)
            Expect.isLessThan (Tensors.maxAbsDiff (conv.WeightsAt 0.5) expectedConv) 1e-15 "θ(0.5) = α ψ(0.5 + 0.25)"
        }
        test "a custom basis that does not extrapolate refuses a transformed depth outside its domain, saying why" {
            let custom = Basis.custom "hat" 2 1.0 (fun s -> [| 1.0; s |]) (fun _ -> [| 0.0; 1.0 |]) (fun s -> [| s; s * s / 2.0 |])
            use layer = new GalLinear(1L, 1L, custom, torch.float64, true, false)
            use x = torch.ones([| 1L; 1L |], dtype = torch.float64)
            do (use _ = torch.no_grad() in layer.Dilation.Value.fill_(1.5) |> ignore)
            use inside = layer.forward(x, 0.5)
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> (layer.forward(x, 1.0)).Dispose())
            Expect.stringContains e.Message "does not extrapolate" "why"
        }
        for basis in bases do
            test $"{basis}: dℓ/dd and dℓ/dh by autograd equal central differences (fixed-step RK4)" {
                let model = Model(basis, 11)
                let control = StepControl.steps 40
                let grads = model.Gradients Sensitivity.Autograd Solvers.rk4 control
                let fdD = model.CentralDifference model.Dilation 1e-5 Solvers.rk4 control
                let fdH = model.CentralDifference model.Shift 1e-5 Solvers.rk4 control
                Expect.isLessThan (abs (grads[0] - fdD)) (1e-7 * (1.0 + abs fdD)) $"dℓ/dd: autograd {grads[0]}, differences {fdD}"
                Expect.isLessThan (abs (grads[1] - fdH)) (1e-7 * (1.0 + abs fdH)) $"dℓ/dh: autograd {grads[1]}, differences {fdH}"
            }
            test $"{basis}: every adjoint's dℓ/dd, dℓ/dh and dℓ/dα equal autograd's, and so does the chain rule on Theorem 1" {
                let model = Model(basis, 12)
                let reference = model.Gradients Sensitivity.Autograd Solvers.dopri5 tight
                for name, sensitivity in Sensitivities.adjointMethods do
                    let got = model.Gradients sensitivity Solvers.dopri5 tight
                    Expect.isLessThan (Tensors.relativeError got[0..1] reference[0..1]) 1e-6 $"{name}: dilation and shift {got[0..1]} vs {reference[0..1]}"
                    Expect.isLessThan (Tensors.relativeError got reference) 1e-6 $"{name}: all"
                use solution = (use _ = torch.no_grad() in Ode.odeint model.Field model.X0 [| 0.0; 1.0 |] Solvers.dopri5 tight)
                use terminal = solution.Final * 2.0
                use chain =
                    InfiniteDimensionalGradient.dilationShiftConverged basis model.Layer.Coefficients (model.Dilation.ToDouble()) (model.Shift.ToDouble())
                        1e-9 model.Field (fun () -> model.Layer.LastWeights) model.X0 terminal None Solvers.dopri5 tight
                let byTheorem1 = Tensors.toArray chain
                Expect.isLessThan (Tensors.relativeError byTheorem1 reference[0..1]) 1e-6 $"chain rule {byTheorem1} vs autograd {reference[0..1]}"
            }
        test "GalConv2d: the adjoint's and Theorem 1's dℓ/dd and dℓ/dh equal autograd's" {
            let basis = Basis.gaussianRbf 3 1.0
            use layer = new GalConv2d(2L, 2L, 3L, basis, 1L, 1L, torch.float64, true, true)
            Tensors.initialize 9 0.3 layer
            do (use _ = torch.no_grad() in layer.Dilation.Value.fill_(0.9) |> ignore; layer.Shift.Value.fill_(0.15) |> ignore)
            use g = torch.Generator(19UL)
            use x0 = torch.randn([| 1L; 2L; 4L; 4L |], dtype = torch.float64, generator = g)
            let field: VectorField = fun s x -> layer.forward(x, s).tanh()
            let parameters: torch.Tensor list = [ layer.Coefficients; layer.Dilation.Value; layer.Shift.Value ]
            let gradientBy (sensitivity: Sensitivity) =
                for p in parameters do p.grad <- null
                let problem = OdeProblem.create field x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters parameters
                use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
                use loss = solution.Final.square().sum()
                loss.backward()
                Array.append (Tensors.toArray layer.Dilation.Value.grad) (Tensors.toArray layer.Shift.Value.grad)
            let reference = gradientBy Sensitivity.Autograd
            Expect.isLessThan (Tensors.relativeError (gradientBy Sensitivity.adjoint) reference) 1e-6 "adjoint"
            use solution = (use _ = torch.no_grad() in Ode.odeint field x0 [| 0.0; 1.0 |] Solvers.dopri5 tight)
            use terminal = solution.Final * 2.0
            use chain =
                InfiniteDimensionalGradient.dilationShiftConverged basis layer.Coefficients 0.9 0.15 1e-9 field (fun () -> layer.LastWeights)
                    x0 terminal None Solvers.dopri5 tight
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray chain) reference) 1e-6 "Theorem 1 by the chain rule"
        }
        test "the compiled MLP backend declines a GalLinear with a trainable depth transform, and the module's solve trains d and h" {
            use layer = new GalLinear(2L, 8L, Basis.fourier 1 1.0, torch.float64, true, true)
            use field = Sequential(layer, Tanh(), Linear(8L, 2L, dtype = torch.float64))
            Tensors.initialize 5 0.5 field
            do (use _ = torch.no_grad() in layer.Dilation.Value.fill_(1.1) |> ignore)
            use x = torch.randn([| 3L; 2L |], dtype = torch.float64, generator = torch.Generator(6UL))
            let run (backend: FieldBackendChoice) =
                for p in field.parameters() do p.grad <- null
                let problem = FieldBackend.problemOf field x [| 0.0; 1.0 |] backend
                use solution = Ode.solveWith Sensitivity.adjoint problem Solvers.dopri5 tight
                use loss = solution.Final.square().sum()
                Ode.backward loss
                solution.Statistics.Backend, [| for p in field.parameters() do yield! Tensors.toArray p.grad |]
            let backend, auto = run FieldBackendChoice.Auto
            let _, moduleOnly = run FieldBackendChoice.Module
            Expect.stringStarts backend "module: its GalLinear has a trainable dilation or shift" "not compiled, and says why"
            Expect.equal auto moduleOnly "the same solve"
            Expect.notEqual (Tensors.toArray layer.Dilation.Value.grad) [| 0.0 |] "d gets a gradient"
        }
    ]
