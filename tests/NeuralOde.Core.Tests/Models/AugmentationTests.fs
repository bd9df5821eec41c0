module NeuralOde.Tests.Models.AugmentationTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private f64 = torch.float64

/// A module from a function (test fields).
type private Lambda(f: torch.Tensor -> torch.Tensor) =
    inherit Module<torch.Tensor, torch.Tensor>("lambda")
    override _.forward(x) = f x

[<Tests>]
let tests =
    testList "Models/augmentation" [
        test "zero augmentation appends (or prepends) zero columns to vectors and zero channels to images" {
            use x = Tensors.f64m [| [| 1.0; 2.0 |]; [| 3.0; 4.0 |] |]
            use aug = new ZeroAugmentation(3L)
            use z = aug.forward x
            Expect.sequenceEqual z.shape [| 2L; 5L |] "two columns plus three"
            Expect.sequenceEqual (Tensors.toArray z) [| 1.0; 2.0; 0.0; 0.0; 0.0; 3.0; 4.0; 0.0; 0.0; 0.0 |] "x then zeros"
            use pre = new ZeroAugmentation(1L, true)
            use zp = pre.forward x
            Expect.sequenceEqual (Tensors.toArray zp) [| 0.0; 1.0; 2.0; 0.0; 3.0; 4.0 |] "zeros then x"
            use image = torch.ones([| 2L; 3L; 4L; 4L |], dtype = f64)
            use zi = aug.forward image
            Expect.sequenceEqual zi.shape [| 2L; 6L; 4L; 4L |] "three zero channels"
            use added = zi.narrow(1L, 3L, 3L)
            Expect.equal (added.abs().sum().ToDouble()) 0.0 "the added channels are zero"
            Raises.raises<System.ArgumentOutOfRangeException> (fun () -> new ZeroAugmentation(0L) |> ignore) |> ignore
        }
        test "input-layer augmentation lifts x by a learned layer, or keeps x beside it" {
            use lift = Linear(2L, 3L, dtype = f64)
            use x = Tensors.f64m [| [| 1.0; 2.0 |] |]
            use full = new InputLayerAugmentation(lift)
            use keep = new InputLayerAugmentation(lift, true)
            use a = full.forward x
            use b = keep.forward x
            Expect.sequenceEqual a.shape [| 1L; 3L |] "h(x)"
            Expect.sequenceEqual b.shape [| 1L; 5L |] "[h(x); x]"
            use tail = b.narrow(1L, 3L, 2L)
            Expect.sequenceEqual (Tensors.toArray tail) [| 1.0; 2.0 |] "x kept"
            Expect.equal (Seq.length (full.parameters())) 2 "the lift's parameters are the module's"
        }
        test "a second-order field (only the acceleration learned) integrates the harmonic oscillator: q(t) = cos t" {
            // z = [q; p], dq/dt = p, dp/dt = g(z) = −q.
            use inner = new Lambda(fun z -> (use q = z.narrow(1L, 0L, 1L) in q.neg()))
            use field = new HigherOrderField(2, inner)
            use block = new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive 1e-10 1e-12, [| 0.0; 2.0 |])
            use z0 = Tensors.f64m [| [| 1.0; 0.0 |]; [| 0.0; 1.0 |] |]
            use z = block.forward z0
            let v = Tensors.toArray z
            Expect.floatClose Accuracy.high v[0] (cos 2.0) "q(2) = cos 2"
            Expect.floatClose Accuracy.high v[1] (-(sin 2.0)) "p(2) = −sin 2"
            Expect.floatClose Accuracy.high v[2] (sin 2.0) "q(2) = sin 2 from (0, 1)"
            Expect.floatClose Accuracy.high v[3] (cos 2.0) "p(2) = cos 2 from (0, 1)"
        }
        test "a third-order field chains the derivatives: y''' = 0 from (0, 0, 1) gives y = t²/2" {
            use inner = new Lambda(fun z -> torch.zeros([| z.shape[0]; 1L |], dtype = z.dtype))
            use field = new HigherOrderField(3, inner)
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, [| 0.0; 2.0 |])
            use z0 = Tensors.f64m [| [| 0.0; 0.0; 1.0 |] |]
            use z = block.forward z0
            Expect.sequenceEqual (Tensors.toArray z |> Array.map (fun v -> System.Math.Round(v, 12))) [| 2.0; 2.0; 1.0 |] "y = t²/2, y' = t, y'' = 1"
        }
        test "a higher-order field checks the state's width and the inner field's output" {
            use inner = Linear(3L, 3L, dtype = f64)
            use field = new HigherOrderField(2, inner)
            use odd = torch.zeros([| 1L; 3L |], dtype = f64)
            Raises.raises<System.ArgumentException> (fun () -> field.forward odd |> ignore) |> ignore
            use inner2 = Linear(4L, 4L, dtype = f64)
            use field2 = new HigherOrderField(2, inner2)
            use even = torch.zeros([| 1L; 4L |], dtype = f64)
            let e = Raises.raises<System.ArgumentException> (fun () -> field2.forward even |> ignore)
            Expect.stringContains e.Message "one chunk of 2" "says what the inner field must return"
        }
    ]
