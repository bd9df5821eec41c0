/// Depth-aware and data-controlled layers inside a block's field (a Sequential with ordinary layers) get the depth
/// and the data, and give the same solution and gradients as the same field written by hand with explicit s and x.
module NeuralOde.Tests.Models.FieldCompositionTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules

let private f64 = torch.float64

let private rk4 = StepControl.steps 16

/// Solution of the block and of the hand-written field f(s, x), and their largest difference.
let private agree (block: NeuralOdeModel) (handWritten: VectorField) (x: torch.Tensor) =
    use a = block.forward x
    use solution = Ode.odeint handWritten x [| 0.0; 1.0 |] Solvers.rk4 rk4
    Tensors.maxAbsDiff a solution.Final

let private randomX (seed: int) (n: int64) (d: int64) =
    use g = torch.Generator(uint64 seed)
    torch.randn([| n; d |], dtype = f64, generator = g)

/// Gradients of a scalar loss of the block's output, for x and every parameter, as host arrays.
let private gradients (block: Module<torch.Tensor, torch.Tensor>) (x: torch.Tensor) =
    use scope = torch.NewDisposeScope()
    block.zero_grad()
    use xr = x.detach().requires_grad_(true)
    let y = block.forward xr
    let loss = (y * y).sum() + y.sum()
    loss.backward()
    let ps = [ for p in block.parameters() -> Tensors.toArray p.grad ]
    Tensors.toArray xr.grad :: ps

[<Tests>]
let tests =
    testList "Models/field composition" [
        test "GalLinear inside a Sequential is told the depth: the block equals the field written with explicit s" {
            let basis = Basis.fourier 2 1.0
            use gal = new GalLinear(2L, 8L, basis, f64)
            use out = Linear(8L, 2L, dtype = f64)
            Tensors.initialize 1 0.5 gal
            Tensors.initialize 2 0.5 out
            use field = chain [ m gal; m (Tanh()); m out ]
            use block = new NeuralOdeModel(field, Solvers.rk4, rk4, [| 0.0; 1.0 |])
            use x = randomX 3 5L 2L
            let byHand: VectorField = fun s z -> out.forward((gal.forward(z, s)).tanh())
            let diff = agree block byHand x
            Expect.isLessThan diff 1e-14 "same solution"
            // A depth-blind evaluation (s = 0 throughout) differs: the check can fail.
            let blind: VectorField = fun _ z -> out.forward((gal.forward(z, 0.0)).tanh())
            Expect.isGreaterThan (agree block blind x) 1e-3 "the depth matters"
        }
        test "GalConv2d and DepthCat (images) inside a Sequential are told the depth" {
            let basis = Basis.fourier 1 1.0
            use cat = new DepthCat()
            use conv = new GalConv2d(3L, 2L, 3L, basis, 1L, 1L, f64)
            Tensors.initialize 4 0.3 conv
            use field = chain [ m cat; m conv; m (Tanh()) ]
            use block = new NeuralOdeModel(field, Solvers.rk4, rk4, [| 0.0; 1.0 |])
            use g = torch.Generator(5UL)
            use x = torch.randn([| 2L; 2L; 4L; 4L |], dtype = f64, generator = g)
            let byHand: VectorField = fun s z -> (conv.forward(cat.forward(z, s), s)).tanh()
            Expect.isLessThan (agree block byHand x) 1e-14 "same solution"
        }
        test "StackedLinear inside a block uses the interval of the depth; with steps on the partition it equals Stacked.solve" {
            let partition = [| 0.0; 0.25; 0.5; 0.75; 1.0 |]
            use layer = new StackedLinear(2L, 2L, partition, f64)
            Tensors.initialize 6 0.8 layer
            use field = chain [ m layer; m (Tanh()) ]
            // 4 fixed steps: each step's stages lie in [s_i, s_{i+1}], the end stage on s_{i+1} — which the block
            // maps to interval i+1, so use a midpoint-free method: Euler samples only each step's start.
            use block = new NeuralOdeModel(field, Solvers.euler, StepControl.steps 4, [| 0.0; 1.0 |])
            use x = randomX 7 3L 2L
            use a = block.forward x
            use expected = Stacked.solve (fun i -> fun _ z -> (layer.forward(z, i)).tanh()) partition x [||] Sensitivity.Autograd Solvers.euler (StepControl.steps 1)
            Expect.isLessThan (Tensors.maxAbsDiff a expected[4L]) 1e-14 "same final state"
            Expect.equal (layer.IntervalOf 0.5) 2 "s = s_2 is in interval 2"
            Expect.equal (layer.IntervalOf 1.0) 3 "the end is in the last interval"
            Raises.raises<System.ArgumentOutOfRangeException> (fun () -> layer.IntervalOf 1.5 |> ignore) |> ignore
        }
        test "a depth-aware field gives the same gradients by autograd and by both adjoints (parameters found by the block)" {
            let basis = Basis.fourier 1 1.0
            let make () =
                let gal = new GalLinear(2L, 6L, basis, f64)
                let out = Linear(6L, 2L, dtype = f64)
                Tensors.initialize 8 0.5 gal
                Tensors.initialize 9 0.5 out
                chain [ m gal; m (Tanh()); m out ]
            use x = randomX 10 4L 2L
            let reference =
                use block = new NeuralOdeModel(make (), Solvers.dopri5, Sensitivities.tight, [| 0.0; 1.0 |])
                gradients block x
            for name, sensitivity in Sensitivities.adjointMethods do
                use block = new NeuralOdeModel(make (), Solvers.dopri5, Sensitivities.tight, sensitivity, [| 0.0; 1.0 |])
                let grads = gradients block x
                List.iter2 (fun a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-6 $"{name}: gradient agrees") grads reference
        }
        test "DataControl: the field reads the block's input; gradients to x and θ agree by autograd and the adjoints" {
            let make () =
                let l1 = Linear(4L, 8L, dtype = f64)
                let l2 = Linear(8L, 2L, dtype = f64)
                Tensors.initialize 11 0.5 l1
                Tensors.initialize 12 0.5 l2
                chain [ m (new DataControl()); m l1; m (Tanh()); m l2 ]
            use x = randomX 13 4L 2L
            let reference =
                use block = new NeuralOdeModel(make (), Solvers.dopri5, Sensitivities.tight, [| 0.0; 1.0 |])
                Expect.isTrue block.IsDataControlled "the block sees the DataControl"
                // The same field by hand, x captured: equal solution.
                let field = block.VectorField
                let l1 = field.children() |> Seq.item 1 :?> TorchSharp.Modules.Linear
                let l2 = field.children() |> Seq.item 3 :?> TorchSharp.Modules.Linear
                let byHand: VectorField = fun _ z -> l2.forward((l1.forward(torch.cat([| z; x |], 1L))).tanh())
                use a = block.forward x
                use b = Ode.odeint byHand x [| 0.0; 1.0 |] Solvers.dopri5 Sensitivities.tight
                Expect.isLessThan (Tensors.maxAbsDiff a b.Final) 1e-12 "same solution as the hand-written f(s, x, z)"
                gradients block x
            for name, sensitivity in Sensitivities.adjointMethods do
                use block = new NeuralOdeModel(make (), Solvers.dopri5, Sensitivities.tight, sensitivity, [| 0.0; 1.0 |])
                let grads = gradients block x
                List.iter2 (fun a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-6 $"{name}: gradient agrees") grads reference
        }
        test "DataControl outside a block raises, naming what it needs" {
            use control = new DataControl()
            use z = torch.zeros([| 2L; 1L |])
            let e = Raises.raises<System.InvalidOperationException> (fun () -> control.forward z |> ignore)
            Expect.stringContains e.Message "block" "says where the data comes from"
        }
        test "a block with a running loss returns its integral with the output, equal to Ode.solveWith's" {
            use field = Sequential(Linear(2L, 2L, dtype = f64), Tanh())
            Tensors.initialize 14 0.5 field
            let loss: IntegralLoss = fun s z -> z.square().sum() * (1.0 + s)
            use block = new NeuralOdeModel("b", field, Solvers.dopri5, Sensitivities.tight, Sensitivity.Autograd, [| 0.0; 1.0 |], Some loss)
            use x = randomX 15 3L 2L
            let z, integral = block.ForwardWithIntegral x
            use _ = z
            use _ = integral
            let problem = OdeProblem.create (fun _ v -> field.forward v) x [| 0.0; 1.0 |] |> OdeProblem.withIntegralLoss loss
            use expected = Ode.solve problem Solvers.dopri5 Sensitivities.tight
            Expect.floatClose Accuracy.high (integral.ToDouble()) (expected.Integral.Value.ToDouble()) "same integral"
            Expect.isLessThan (Tensors.maxAbsDiff z expected.Final) 1e-12 "same output"
        }
        test "a block's time tensor gets dL/dT = λ(T)ᵀ f(z(T)) by the adjoint" {
            use field = Sequential(Linear(2L, 2L, dtype = f64), Tanh())
            Tensors.initialize 16 0.5 field
            use block = new NeuralOdeModel(field, Solvers.dopri5, Sensitivities.tight, Sensitivity.adjoint, [| 0.0; 1.0 |])
            use x = randomX 17 3L 2L
            use times = torch.tensor([| 0.0; 1.0 |], dtype = f64).requires_grad_(true)
            use solution = block.Trajectory(x, times)
            use final = solution.Final
            use loss = final.sum()
            loss.backward()
            use f1 = (use _ = torch.no_grad() in field.forward final)
            let expected = (Tensors.toArray f1) |> Array.sum
            let dT = (Tensors.toArray times.grad)[1]
            Expect.floatClose Accuracy.medium dT expected "dL/dT = 1ᵀ f(z(T))"
        }
    ]
