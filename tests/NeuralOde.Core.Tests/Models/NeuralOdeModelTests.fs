module NeuralOde.Tests.Models.NeuralOdeModelTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets
open NeuralOde.Tests.Support

[<Tests>]
let tests =
    testList "Models/NeuralOdeModel" [
        test "registers the vector field's parameters" {
            use field = Sequential(Linear(2L, 8L), Tanh(), Linear(8L, 2L))
            use model = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
            Expect.equal (Seq.length (model.parameters())) 4 "two weights and two biases"
        }
        test "trains on augmented concentric annuli: the loss falls and accuracy rises above 90%" {
            use g = torch.Generator(3UL)
            use field = Sequential(Linear(3L, 32L), Tanh(), Linear(32L, 3L))
            Tensors.initialize 1 0.3 field
            use model = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 8, [| 0.0; 1.0 |])
            use readout = Linear(3L, 2L)
            Tensors.initialize 2 0.3 readout
            let parameters = Seq.append (model.parameters()) (readout.parameters())
            use opt = torch.optim.Adam(parameters, 0.02)
            let forward (x: torch.Tensor) =
                use zero = torch.zeros([| x.shape[0]; 1L |])
                use z0 = torch.cat(([| x; zero |]: torch.Tensor[]), 1L)
                use zS = model.forward(z0)
                readout.forward(zS)
            let losses = ResizeArray()
            for _ in 1 .. 150 do
                use scope = torch.NewDisposeScope()
                let x, y = Annuli.sample 256 0.1 torch.float32 g
                opt.zero_grad()
                let loss = torch.nn.functional.cross_entropy(forward x, y)
                loss.backward()
                opt.step() |> ignore
                losses.Add(loss.ToDouble())
            use scope = torch.NewDisposeScope()
            let x, y = Annuli.sample 1000 0.1 torch.float32 g
            let accuracy = (use _ = torch.no_grad() in (forward x).argmax(1L).eq(y).to_type(torch.float64).mean().ToDouble())
            Expect.isLessThan (Seq.last losses) (losses[0] * 0.5) $"loss fell from {losses[0]:F3} to {Seq.last losses:F3}"
            Expect.isGreaterThan accuracy 0.9 $"accuracy {accuracy:P1}"
            Expect.equal model.LastStatistics.FunctionEvaluations 32 "8 RK4 steps = 32 evaluations"
        }
    ]

[<Tests>]
let depthCatTests =
    testList "Models/DepthCat" [
        test "appends a feature column filled with the depth" {
            use layer = new DepthCat()
            use x = torch.zeros([| 2L; 3L |], dtype = torch.float64)
            use y = layer.forward(x, 0.25)
            Expect.sequenceEqual y.shape [| 2L; 4L |] "one more feature"
            Expect.equal (Tensors.toArray y) [| 0.0; 0.0; 0.0; 0.25; 0.0; 0.0; 0.0; 0.25 |] "the last column is s"
        }
        test "appends a channel to images, and refuses unbatched input" {
            use layer = new DepthCat()
            use images = torch.zeros([| 2L; 3L; 4L; 4L |])
            use y = layer.forward(images, 0.5)
            Expect.sequenceEqual y.shape [| 2L; 4L; 4L; 4L |] "one more channel"
            use unbatched = torch.zeros([| 3L |])
            Raises.raises<System.ArgumentException> (fun () -> layer.forward(unbatched, 0.5) |> ignore) |> ignore
        }
    ]

[<Tests>]
let inputTests =
    testList "Models/NeuralOdeModel/input dtype" [
        test "an input of another dtype than the field's parameters is named before the solve, fused or not" {
            for fieldType, inputType in [ torch.float64, torch.float32; torch.float64, torch.float16; torch.float32, torch.float64 ] do
                for fused in [ true; false ] do
                    use field = Sequential(Linear(2L, 8L, dtype = fieldType), Tanh(), Linear(8L, 2L, dtype = fieldType))
                    use model = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
                    model.Backend <- Compiled.choice (fused)
                    use x = torch.ones([| 3L; 2L |], dtype = inputType)
                    let e = Raises.raises<System.ArgumentException> (fun () -> model.forward x |> ignore)
                    let case = $"{inputType} into {fieldType}, fused {fused}"
                    Expect.equal e.ParamName "x" $"{case}: names x"
                    Expect.stringContains e.Message (string inputType) $"{case}: names x's dtype"
                    Expect.stringContains e.Message (string fieldType) $"{case}: names the parameters' dtype"
        }
    ]
