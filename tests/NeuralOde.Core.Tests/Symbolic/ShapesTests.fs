/// Shapes of symbolic expressions: a symbolic field's parameter of the wrong shape named at its first evaluation
/// (with the operation, the state's shape and every parameter's shape), and a sum over an axis outside the operand.
module NeuralOde.Tests.Symbolic.ShapesTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

let private f64 = torch.float64
let private z, w, b = Expr.tensor "z", Expr.tensor "w", Expr.tensor "b"

[<Tests>]
let tests =
    testList "Symbolic/Shapes" [
        test "a symbolic parameter of the wrong shape is named before the field is evaluated" {
            // tanh(z W + b) for z [N, 2]: W must be [2, 2] and b broadcast against [N, 2].
            let field = Expr.tanh (Add(Expr.matmul z w, b))
            for name, wShape, bShape, operation in
                [ "W rows", [| 3L; 2L |], [| 2L |], "matrix product"
                  "b width", [| 2L; 2L |], [| 3L |], "sum"
                  "W columns", [| 2L; 3L |], [| 1L |], "would have shape [5, 3]" ] do
                use f = SymbolicField.create field "z" [ "w", torch.zeros(wShape, dtype = f64); "b", torch.zeros(bShape, dtype = f64) ] None None
                use x = torch.ones([| 5L; 2L |], dtype = f64)
                let e = Raises.raises<ArgumentException> (fun () -> f.forward x |> ignore)
                Expect.equal e.ParamName "parameters" $"{name}: names the parameters"
                Expect.stringContains e.Message operation $"{name}: names the operation"
                Expect.stringContains e.Message "[5, 2]" $"{name}: names the state's shape"
                Expect.stringContains e.Message $"""'w' [{String.Join(", ", wShape)}]""" $"{name}: names w's shape"
                Expect.stringContains e.Message $"""'b' [{String.Join(", ", bShape)}]""" $"{name}: names b's shape"
        }
        test "sumAxis outside its operand's rank raises ArgumentOutOfRangeException naming it and the valid range" {
            use t = torch.ones([| 2L; 3L |], dtype = f64)
            for axis in [ 2; 5; -3 ] do
                let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> Evaluate.evaluate (Map [ "z", t ]) (Expr.sumAxis z axis) |> ignore)
                Expect.equal e.ParamName "sumAxis" $"axis {axis}: names sumAxis"
                Expect.equal e.ActualValue (box axis) $"axis {axis}: the value"
                Expect.stringContains e.Message "[-2, 1]" $"axis {axis}: the valid range"
            use last = Evaluate.evaluate (Map [ "z", t ]) (Expr.sumAxis z -1)
            Expect.sequenceEqual last.shape [| 2L |] "−1 is the last axis"
        }
    ]
