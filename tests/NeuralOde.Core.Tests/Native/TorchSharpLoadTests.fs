/// The native backend loads on this machine (on Debian 12 only after the build's GLIBCXX_3.4.32 fix).
module NeuralOde.Tests.Native.TorchSharpLoadTests

open Expecto
open TorchSharp
open NeuralOde.Tests.Support

[<Tests>]
let tests =
    testList "Native/TorchSharp" [
        test "a tensor op and a backward pass run" {
            use x = torch.tensor([| 1.0; -2.0; 3.0 |], dtype = torch.float64, requires_grad = true)
            use y = x.mul(x).sum()
            y.backward()
            Expect.sequenceEqual (Tensors.toArray x.grad) [| 2.0; -4.0; 6.0 |] "d(Σx²)/dx = 2x"
            Expect.floatClose Accuracy.veryHigh (y.ToDouble()) 14.0 "Σx² = 14"
        }
        test "nn and optim run: one SGD step lowers a quadratic loss" {
            use layer = torch.nn.Linear(3L, 1L, dtype = torch.float64)
            use opt = torch.optim.SGD(layer.parameters(), 0.1)
            use x = torch.ones([| 4L; 3L |], dtype = torch.float64)
            let loss () = layer.forward(x).square().mean()
            let before = loss ()
            opt.zero_grad()
            before.backward()
            opt.step() |> ignore
            let after = loss ()
            let before, after = before.ToDouble(), after.ToDouble()
            Expect.isLessThan after before "the loss decreased"
        }
    ]
