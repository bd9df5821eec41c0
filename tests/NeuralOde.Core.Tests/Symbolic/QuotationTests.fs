/// The F# quotation front end: an ordinary lambda over expressions becomes the same Expr as one built by hand, and
/// unsupported constructs are named.
module NeuralOde.Tests.Symbolic.QuotationTests

open System
open Expecto
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

[<Tests>]
let tests =
    testList "Symbolic/quotations" [
        test "the worked example's field, quoted, equals the one built by hand" {
            let quoted = Quotation.toExpr [ "theta" ] <@ fun (z: Expr) (theta: Expr) -> theta * z + sin z @>
            let byHand = Add(Mul(Expr.scalar "theta", Expr.tensor "z"), Expr.sin (Expr.tensor "z"))
            Expect.equal quoted byHand "same tree"
        }
        test "operators, functions, the Expr module, constants and let bindings translate" {
            let quoted =
                Quotation.toExpr [] <@ fun (z: Expr) (w: Expr) ->
                    let h = Expr.matmul z w
                    Expr.sigmoid (tanh h) * 2.0 - Expr.pow (exp z) 2.0 / Expr.sum (log (Expr.softplus z)) @>
            Expect.equal (Render.text quoted) "sigmoid(tanh(z @ w)) .* 2 - exp(z)^2 / sum(log(softplus(z)))" "rendered"
            Expect.equal (Expr.variables quoted) [ "z", Tensor; "w", Tensor ] "variables"
        }
        test "unsupported constructs are named" {
            let e = Raises.raises<ArgumentException> (fun () -> Quotation.toExpr [] <@ fun (z: Expr) -> if true then z else -z @> |> ignore)
            Expect.stringContains e.Message "does not translate" "says it"
            let e = Raises.raises<ArgumentException> (fun () -> Quotation.toExpr [] <@ fun (z: Expr) -> Expr.constant (float (Expr.size z)) @> |> ignore)
            Expect.stringContains e.Message "the function 'ToDouble'" "names the function (float(...), the outermost)"
            let e = Raises.raises<ArgumentException> (fun () -> Quotation.toExpr [] <@ fun (x: float) -> Expr.constant x @> |> ignore)
            Expect.stringContains e.Message "parameters must be Expr" "parameter types"
        }
    ]
