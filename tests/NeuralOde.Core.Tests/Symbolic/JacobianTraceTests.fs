/// The symbolic trace of a field's Jacobian against autograd's exact trace (d vector–Jacobian products), float64,
/// on random row-wise fields: MLPs of one to four layers with broadcast biases and any activation, data concatenated
/// to the state, elementwise products, quotients, powers and depth scalings — so every assembly of the trace (no
/// nonlinearity, one, two, three or more) is exercised. Fields whose rows mix are refused by name.
module NeuralOde.Tests.Symbolic.JacobianTraceTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

type private Field = { Expression: Expr; Widths: int list; Data: bool; Seed: int; Batch: int; Dim: int }

/// u ↦ one of the row-wise operations that keep the width.
let private elementwise (u: Expr) : Gen<Expr> =
    Gen.elements [
        Expr.tanh u
        Expr.sigmoid u
        Expr.softplus u
        Expr.sin u
        Mul(u, Expr.tanh u)
        Div(u, Add(Const 2.0, Expr.sigmoid u))
        Pow(Expr.sigmoid u, 2.0)
        Mul(Expr.scalar "s", u)
        Sub(u, Expr.exp (Expr.tanh u))
        u ]

let private fieldGen =
    gen {
        let! layers = Gen.choose (0, 4)
        let! dim = Gen.choose (1, 4)
        let! data = Gen.elements [ true; false ]
        let! widths = Gen.listOfLength layers (Gen.choose (1, 5))
        let z = Expr.tensor "z"
        let input = if data then Expr.concat [ z; Expr.tensor "x" ] 1 else z
        // Layer i: act(u W_i + b_i); the last product maps back to the state's width.
        let mutable u = input
        for i in 0 .. layers - 1 do
            let! activated = elementwise (Add(Expr.matmul u (Expr.tensor $"w{i}"), Expr.tensor $"b{i}"))
            u <- activated
        let! tail = elementwise u
        let expression = Expr.matmul tail (Expr.tensor "wout")
        let! extra = Gen.elements [ None; Some(Expr.tanh z); Some(Mul(z, Expr.sigmoid z)) ]
        let expression = match extra with Some e -> Add(expression, e) | None -> expression
        let! seed = Gen.choose (0, 1_000_000)
        let! batch = Gen.choose (1, 5)
        return { Expression = expression; Widths = widths; Data = data; Seed = seed; Batch = batch; Dim = dim }
    }

type private Arbitraries =
    static member Field() = Arb.fromGen fieldGen

let private config = { FsCheckConfig.defaultConfig with maxTest = 120; arbitrary = [ typeof<Arbitraries> ] }

/// Values for the field's variables: z [N, d], x [N, 2], the weights and biases along the widths.
let private bindings (f: Field) =
    let g = torch.Generator(uint64 f.Seed)
    let draw (shape: int64[]) = torch.randn(shape, dtype = torch.float64, generator = g) * 0.6
    let n, d = int64 f.Batch, int64 f.Dim
    let inputWidth = d + (if f.Data then 2L else 0L)
    let widths = inputWidth :: (f.Widths |> List.map int64)
    [ yield "z", draw [| n; d |]
      yield "x", draw [| n; 2L |]
      yield "s", draw [||]
      for i in 0 .. f.Widths.Length - 1 do
          yield $"w{i}", draw [| widths[i]; widths[i + 1] |]
          yield $"b{i}", draw [| widths[i + 1] |]
      yield "wout", draw [| List.last widths; d |] ]
    |> Map.ofList

[<Tests>]
let tests =
    testList "Symbolic/Jacobian trace" [
        testPropertyWithConfig config "the symbolic trace equals autograd's exact trace on random row-wise fields" <| fun (f: Field) ->
            use scope = torch.NewDisposeScope()
            let values = bindings f
            let j = JacobianTrace.derive f.Expression "z"
            let z = values["z"]
            use symbolic = JacobianTrace.at j "z" values
            let zr = z.detach().requires_grad_(true)
            let fz = Evaluate.evaluate (values |> Map.add "z" zr) f.Expression
            use autograd = Trace.exact fz zr false
            let e, a = Tensors.toArray autograd, Tensors.toArray symbolic
            let worst = Array.map2 (fun x y -> abs (x - y)) e a |> Array.fold max 0.0
            Expect.isLessThan worst (1e-10 * (1.0 + (e |> Array.map abs |> Array.fold max 0.0))) $"tr ∂f/∂z of {Render.text f.Expression}: largest difference {worst:E2}"
        test "the trace of a one-hidden-layer MLP is Σ_k σ′(u_k) (W_out W_in)_kk: one scaling between two matrices" {
            let z, w1, b, w2 = Expr.tensor "z", Expr.tensor "w1", Expr.tensor "b", Expr.tensor "w2"
            let j = JacobianTrace.derive (Expr.matmul (Expr.tanh (Add(Expr.matmul z w1, b))) w2) "z"
            Expect.equal (JacobianTrace.text j) "tr(w1 diag(1 - tanh(z @ w1 + b)^2) w2)" "one chain: W_in, σ′, W_out"
        }
        test "an operand of width 1 broadcast against the features: the trace still equals autograd's" {
            let z, w, u = Expr.tensor "z", Expr.tensor "w", Expr.tensor "u"
            use g = torch.Generator(8UL)
            let values =
                Map [ "z", torch.randn([| 6L; 3L |], dtype = torch.float64, generator = g); "w", torch.randn([| 3L; 3L |], dtype = torch.float64, generator = g)
                      "u", torch.randn([| 3L; 1L |], dtype = torch.float64, generator = g) ]
            let fields =
                [ Add(Expr.matmul z w, Expr.tanh (Expr.matmul z u))              // [N, 1] added to [N, 3]
                  Mul(z, Expr.tanh (Expr.matmul z u))                            // [N, 3] scaled by [N, 1]
                  Mul(Expr.sigmoid (Expr.matmul z u), Expr.tanh (Expr.matmul z w)) ]
            for field in fields do
                use symbolic = JacobianTrace.at (JacobianTrace.derive field "z") "z" values
                let zr = values["z"].detach().requires_grad_(true)
                use fz = Evaluate.evaluate (values |> Map.add "z" zr) field
                use autograd = Trace.exact fz zr false
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray symbolic) (Tensors.toArray autograd)) 1e-12 (Render.text field)
        }
        test "fields whose rows mix are refused, naming the construct" {
            let z = Expr.tensor "z"
            for field, what in [ Expr.matmul (Expr.transpose z) z, "right operand"; Add(z, Mul(Expr.sum z, Const 0.1)), "sum across"
                                 Expr.matmul (Expr.tensor "a") z, "right operand" ] do
                let e = Raises.raises<NotSupportedException> (fun () -> JacobianTrace.derive field "z" |> ignore)
                Expect.stringContains e.Message what $"names {what}"
                Expect.stringContains e.Message "Hutchinson" "says what to use instead"
        }
    ]
