/// Fields whose width does not fit: a flow's field of another width than its dimension (at construction for a plain
/// MLP, at the first evaluation for any other field) and a regulariser over a field whose value has another shape
/// than its state, each named with the shapes instead of libtorch's message (or a silently wrong sum).
module NeuralOde.Tests.Models.FieldShapeTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules

let private f64 = torch.float64

[<Tests>]
let tests =
    testList "Models/FieldShape" [
        test "a flow whose MLP field is not of its dimension is refused when built, naming both widths" {
            let mlp inner outer = chain [ m (Linear(inner, 8L, dtype = f64)); m (Tanh()); m (Linear(8L, outer, dtype = f64)); m (Tanh()) ]
            let afterDepth = chain [ m (new DepthCat()); m (Linear(3L, 8L, dtype = f64)); m (Tanh()); m (Linear(8L, 3L, dtype = f64)) ]
            for field, expected in [ mlp 3L 3L, "takes 3 features"; mlp 2L 3L, "returns 3 features"; mlp 3L 2L, "takes 3 features"; afterDepth, "returns 3 features" ] do
                let e = Raises.raises<ArgumentException> (fun () -> (new Cnf(field, 2, Exact, Solvers.rk4, StepControl.steps 4)).Dispose())
                Expect.equal e.ParamName "field" "names the field"
                Expect.stringContains e.Message expected "names the field's width"
                Expect.stringContains e.Message "dimension is 2" "names the dimension"
        }
        test "a flow whose other field is not of its dimension is refused at its first evaluation, naming the shapes" {
            // DepthCat makes the field unrecognised: its width is only known when it runs.
            let field = chain [ m (new DepthCat()); m (Linear(4L, 8L, dtype = f64)); m (Tanh()); m (Linear(8L, 2L, dtype = f64)) ]
            use cnf = new Cnf(field, 2, Exact, Solvers.rk4, StepControl.steps 4)
            use x = torch.ones([| 5L; 2L |], dtype = f64)
            for name, action in [ "encode", (fun () -> cnf.LogProbability x |> ignore); "decode", (fun () -> cnf.Sample x |> ignore) ] do
                let e = Raises.raises<ArgumentException> action
                Expect.equal e.ParamName "field" $"{name}: names the field"
                Expect.stringContains e.Message "dimension 2" $"{name}: names the dimension"
                Expect.stringContains e.Message "[5, 2]" $"{name}: names the state's shape"
        }
        test "a regulariser over a field whose value has another shape than its state is refused, naming both" {
            let field: VectorField = fun _ z -> z.narrow(1L, 0L, 1L) * 2.0
            use z = torch.ones([| 4L; 3L |], dtype = f64)
            use g = new torch.Generator(5UL)
            for name, loss in [ "kinetic energy", Regularisers.kineticEnergy field; "Jacobian", Regularisers.jacobianFrobenius field Rademacher g ] do
                let e = Raises.raises<ArgumentException> (fun () -> loss 0.5 z |> ignore)
                Expect.equal e.ParamName "f" $"{name}: names the field"
                Expect.stringContains e.Message "[4, 3]" $"{name}: names the state's shape"
                Expect.stringContains e.Message "[4, 1]" $"{name}: names the field's shape"
        }
    ]
