/// Compiling an expression once into a function of its variables, with common subexpressions shared: every
/// structurally equal subexpression (the tanh(z W) that a derivative repeats, say) is computed once per call. The
/// result runs without building an autograd graph when called under torch.no_grad (as SymbolicAdjoint does).
module NeuralOde.Core.Symbolic.Compile

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.Symbolic

/// The compiled form: the distinct subexpressions in evaluation order (children before parents), and for each the
/// positions of its operands in that order.
type Compiled internal (nodes: Expr[], operands: int[][], variables: (string * Kind) list) =
    /// The number of distinct subexpressions evaluated per call.
    member _.Operations = nodes.Length
    /// The variables to bind.
    member _.Variables = variables
    /// Evaluates with each variable bound by name (as Evaluate.evaluate); intermediates are freed before returning.
    member _.Invoke(environment: Map<string, torch.Tensor>) : torch.Tensor =
        let like = environment |> Seq.tryHead |> Option.map (fun kv -> kv.Value)
        let dtype, device = match like with Some t -> t.dtype, t.device | None -> torch.float64, torch.CPU
        use scope = torch.NewDisposeScope()
        let values = Array.zeroCreate<torch.Tensor> nodes.Length
        for i in 0 .. nodes.Length - 1 do
            let arg k = values[operands[i][k]]
            values[i] <-
                match nodes[i] with
                | Var _ | Const _ | Psi _ ->
                    // Leaves (and basis functions, whose depth is itself a leaf or a small expression) by the interpreter.
                    match nodes[i] with
                    | Psi(b, j, _, d) ->
                        let depth = (arg 0).ToDouble()
                        let v = match d with 0 -> (NeuralOde.Core.Basis.valuesAt b depth)[j] | 1 -> (b.Derivatives depth)[j] | _ -> (b.Integrals depth)[j]
                        torch.tensor(v, dtype = dtype, device = device)
                    | leaf -> Evaluate.evaluate environment leaf
                | Add _ -> torch.add(arg 0, arg 1)
                | Sub _ -> torch.sub(arg 0, arg 1)
                | Mul _ -> torch.mul(arg 0, arg 1)
                | Div _ -> torch.div(arg 0, arg 1)
                | Neg _ -> (arg 0).neg()
                | Pow(_, p) -> use exponent = torch.tensor(p, dtype = dtype, device = device) in torch.pow(arg 0, exponent)
                | Apply(f, _) ->
                    let x = arg 0
                    match f with
                    | Tanh -> x.tanh()
                    | Sigmoid -> x.sigmoid()
                    | Softplus -> torch.nn.functional.softplus(x)
                    | Sin -> x.sin()
                    | Cos -> x.cos()
                    | Exp -> x.exp()
                    | Log -> x.log()
                | MatMul _ -> (arg 0).mm(arg 1)
                | Transpose _ -> (arg 0).t()
                | SumAll _ -> (arg 0).sum()
                | OnesLike _ -> torch.ones_like(arg 0)
        values[nodes.Length - 1].MoveToOuterDisposeScope()

/// Compiles `e`: its distinct subexpressions, each evaluated once per call.
let compile (e: Expr) : Compiled =
    let index = Dictionary<Expr, int>()
    let nodes = List<Expr>()
    let operands = List<int[]>()
    let rec visit (e: Expr) : int =
        match index.TryGetValue e with
        | true, i -> i
        | _ ->
            let children =
                match e with
                | Const _ | Var _ -> [||]
                | Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | MatMul(a, b) -> [| visit a; visit b |]
                | Neg a | Pow(a, _) | Apply(_, a) | Transpose a | SumAll a | OnesLike a | Psi(_, _, a, _) -> [| visit a |]
            let i = nodes.Count
            nodes.Add e
            operands.Add children
            index[e] <- i
            i
    visit e |> ignore
    Compiled(nodes.ToArray(), operands.ToArray(), Expr.variables e)
