/// Paths the first model tests missed: a CNF's condition trained through an embedding under the adjoints, data
/// control leaving no data behind, per-sample DepthCat depths under the adjoints, and a block's regulariser seeing
/// the depth and data as its field does.
module NeuralOde.Tests.Models.ReviewFollowUpTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules

let private f64 = torch.float64

[<Tests>]
let tests =
    testSequenced <| testList "Models/follow-up" [
        test "a conditional CNF trains its condition's embedding by every adjoint as by autograd" {
            let gradient (sensitivity: Sensitivity) =
                use scope = torch.NewDisposeScope()
                let embed = Linear(1L, 2L, dtype = f64)
                let field = chain [ m (new ConditionCat()); m (Linear(4L, 8L, dtype = f64)); m (Tanh()); m (Linear(8L, 2L, dtype = f64)) ]
                Tensors.initialize 41 0.5 embed
                Tensors.initialize 42 0.5 field
                use cnf = new Cnf("c", field, 2, TraceEstimator.Exact, Solvers.dopri5, Sensitivities.tight, sensitivity, 0.0, 1.0, null)
                let labels = Tensors.f64m [| [| 0.0 |]; [| 1.0 |]; [| 1.0 |] |]
                let x = Tensors.f64m [| [| 0.3; -0.2 |]; [| 1.0; 0.5 |]; [| -0.7; 0.1 |] |]
                let loss = (cnf.LogProbability(x, embed.forward labels)).sum()
                Ode.backward loss
                Expect.isNotNull embed.weight.grad "the embedding gets a gradient"
                Tensors.toArray embed.weight.grad
            let reference = gradient Sensitivity.Autograd
            for name, sensitivity in Sensitivities.adjointMethods do
                Expect.isLessThan (Tensors.relativeError (gradient sensitivity) reference) 1e-6 $"{name}: the embedding's gradient"
        }
        test "DataControl holds no data once the block's solve is over" {
            let control = new DataControl()
            use block = new NeuralOdeModel(chain [ m control; m (Linear(2L, 1L, dtype = f64)) ], Solvers.rk4, StepControl.steps 2, [| 0.0; 1.0 |])
            use x = Tensors.f64m [| [| 1.0 |] |]
            use _ = block.forward x
            use z = Tensors.f64m [| [| 1.0 |] |]
            Raises.raises<System.InvalidOperationException> (fun () -> control.forward z |> ignore) |> ignore
        }
        test "adaptive depth with a DepthCat field: ω and θ get the same gradients by autograd and every adjoint" {
            let gradients (sensitivity: Sensitivity) =
                use scope = torch.NewDisposeScope()
                let field = chain [ m (new DepthCat()); m (Linear(2L, 8L, dtype = f64)); m (Tanh()); m (Linear(8L, 1L, dtype = f64)) ]
                let depth = chain [ m (Linear(1L, 4L, dtype = f64)); m (Tanh()); m (Linear(4L, 1L, dtype = f64)) ]
                Tensors.initialize 43 0.7 field
                Tensors.initialize 44 0.7 depth
                use model = new AdaptiveDepthModel("a", field, depth, Solvers.dopri5, Sensitivities.tight, sensitivity, 0.1)
                let x = Tensors.f64m [| [| -1.0 |]; [| 0.2 |]; [| 0.9 |] |]
                Ode.backward ((model.forward x).square().sum())
                [ for p in model.parameters() -> Tensors.toArray p.grad ]
            let reference = gradients Sensitivity.Autograd
            for name, sensitivity in Sensitivities.adjointMethods do
                List.iter2 (fun a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-6 $"{name}: a gradient") (gradients sensitivity) reference
        }
        test "a block's regulariser sees the data its field sees: 0.5·∫Σ‖f(s, x, z)‖² equals the hand-written integral" {
            use scope = torch.NewDisposeScope()
            let l1 = Linear(2L, 4L, dtype = f64)
            let l2 = Linear(4L, 1L, dtype = f64)
            Tensors.initialize 45 0.5 l1
            Tensors.initialize 46 0.5 l2
            use block = new NeuralOdeModel(chain [ m (new DataControl()); m l1; m (Tanh()); m l2 ], Solvers.dopri5, Sensitivities.tight, [| 0.0; 1.0 |])
            block.Regulariser <- Some(Regularisers.weighted 0.5 0.0)
            let x = Tensors.f64m [| [| 1.0 |]; [| -0.5 |] |]
            let _, integral = block.ForwardWithIntegral x
            let byHand: VectorField = fun _ z -> l2.forward((l1.forward(torch.cat([| z; x |], 1L))).tanh())
            let problem = OdeProblem.create byHand x [| 0.0; 1.0 |] |> OdeProblem.withIntegralLoss (fun t z -> (byHand t z).square().sum() * 0.5)
            use expected = Ode.solve problem Solvers.dopri5 Sensitivities.tight
            Expect.floatClose Accuracy.high (integral.ToDouble()) (expected.Integral.Value.ToDouble()) "same integral"
            Raises.raises<System.ArgumentOutOfRangeException> (fun () -> Regularisers.weighted nan 0.0 |> ignore) |> ignore
        }
    ]
