/// Regressions of bugs users hit in other libraries' adjoints, and the seminorm's saving.
module NeuralOde.Tests.Sensitivity.RegressionTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private tight = Sensitivities.tight

/// Gradients of every parameter of encoder → Neural ODE block → readout on one batch, by `sensitivity`.
let private pipelineGradients (sensitivity: Sensitivity) =
    use encoder = Linear(3L, 4L, dtype = torch.float64)
    use field = Sequential(Linear(4L, 8L, dtype = torch.float64), Tanh(), Linear(8L, 4L, dtype = torch.float64))
    Tensors.initialize 11 0.5 encoder
    Tensors.initialize 12 0.5 field
    use block = new NeuralOdeModel(field, Solvers.dopri5, tight, sensitivity, [| 0.0; 1.0 |])
    use readout = Linear(4L, 2L, dtype = torch.float64)
    Tensors.initialize 13 0.5 readout
    use g = torch.Generator(14UL)
    use x = torch.randn([| 5L; 3L |], dtype = torch.float64, generator = g)
    use y = readout.forward(block.forward(encoder.forward x))
    use loss = y.square().sum()
    loss.backward()
    let grads (m: Module) = m.parameters() |> Seq.map (fun p -> Tensors.toArray p.grad) |> Array.concat
    grads encoder, grads field, grads readout, block.LastBackwardStatistics.FunctionEvaluations

[<Tests>]
let tests =
    testList "Sensitivity/regressions" [
        for name, sensitivity in Sensitivities.adjointMethods do
            test $"{name}: gradients reach an encoder before the block and a readout after it" {
                let encoder, field, readout, backwardNfe = pipelineGradients sensitivity
                let encoderRef, fieldRef, readoutRef, _ = pipelineGradients Sensitivity.Autograd
                Expect.isLessThan (Tensors.relativeError encoder encoderRef) 1e-6 "encoder"
                Expect.isLessThan (Tensors.relativeError field fieldRef) 1e-6 "vector field"
                Expect.isLessThan (Tensors.relativeError readout readoutRef) 1e-6 "readout"
                Expect.isGreaterThan backwardNfe 0 "the block reports its backward solve"
            }
            test $"{name}: a parameter the vector field does not use gets a zero gradient of its shape" {
                use g = torch.Generator(21UL)
                use w = torch.randn([| 2L; 2L |], dtype = torch.float64, generator = g).requires_grad_(true)
                use unused = torch.randn([| 3L; 5L |], dtype = torch.float64, generator = g).requires_grad_(true)
                use x0 = torch.ones([| 4L; 2L |], dtype = torch.float64)
                let problem = OdeProblem.create (fun _ x -> x.matmul(w).tanh()) x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ w; unused ]
                use solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
                use loss = solution.Final.sum()
                loss.backward()
                Expect.isNotNull unused.grad "a gradient is there"
                Expect.sequenceEqual unused.grad.shape [| 3L; 5L |] "of the parameter's shape"
                Expect.isTrue (Tensors.toArray unused.grad |> Array.forall ((=) 0.0)) "and zero"
                Expect.isTrue (Tensors.toArray w.grad |> Array.exists ((<>) 0.0)) "the used parameter's is not"
            }
            test $"{name}: parameters of different shapes and dtypes get gradients of their own dtype" {
                let make () =
                    use g = torch.Generator(5UL)
                    torch.randn([| 3L |], dtype = torch.float32, generator = g).requires_grad_(true),
                    torch.randn([| 2L; 3L |], dtype = torch.float64, generator = g).requires_grad_(true),
                    torch.randn([||], dtype = torch.float64, generator = g).requires_grad_(true)
                let run (s: Sensitivity) =
                    let scale32, w, c = make ()
                    use x0 = torch.ones([| 2L; 2L |], dtype = torch.float64)
                    let f: VectorField = fun _ x -> (x.matmul(w) * scale32.to_type(torch.float64)).tanh().matmul(w.t()) * c
                    let problem = OdeProblem.create f x0 [| 0.0; 0.5; 1.0 |] |> OdeProblem.withParameters [ scale32; w; c ]
                    use solution = Ode.solveWith s problem Solvers.dopri5 tight
                    use loss = solution.States.square().sum()
                    loss.backward()
                    Expect.equal scale32.grad.dtype torch.float32 "float32 parameter, float32 gradient"
                    Expect.equal w.grad.dtype torch.float64 "float64 parameter, float64 gradient"
                    Expect.sequenceEqual c.grad.shape [||] "0-dim parameter, 0-dim gradient"
                    Array.concat [ Tensors.toArray scale32.grad; Tensors.toArray w.grad; Tensors.toArray c.grad ]
                let reference = run Sensitivity.Autograd
                // The float32 parameter's gradient is rounded to float32: compare at float32 precision.
                Expect.isLessThan (Tensors.relativeError (run sensitivity) reference) 1e-6 "matches autograd"
            }
        test "seminorm cuts backward evaluations without changing the gradient beyond tolerance" {
            let run (seminorm: bool) =
                use field = Sequential(Linear(2L, 32L, dtype = torch.float64), Tanh(), Linear(32L, 2L, dtype = torch.float64))
                Tensors.initialize 3 0.4 field
                let sensitivity = Sensitivity.Adjoint { Sensitivity.defaultOptions with Seminorm = seminorm }
                use block = new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive 1e-6 1e-8, sensitivity, [| 0.0; 2.0 |])
                use g = torch.Generator(4UL)
                use x = torch.randn([| 64L; 2L |], dtype = torch.float64, generator = g)
                use loss = block.forward(x).square().sum()
                loss.backward()
                let grads = field.parameters() |> Seq.map (fun p -> Tensors.toArray p.grad) |> Array.concat
                grads, block.LastBackwardStatistics.FunctionEvaluations
            let full, fullNfe = run false
            let semi, semiNfe = run true
            Expect.isLessThan semiNfe fullNfe $"backward evaluations: seminorm {semiNfe} < full norm {fullNfe}"
            Expect.isLessThan (Tensors.relativeError semi full) 1e-4 "gradients agree within the solve's tolerance"
        }
    ]
