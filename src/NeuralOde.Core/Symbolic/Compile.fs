/// Compiling an expression once into a function of its variables, with common subexpressions shared: every
/// structurally equal subexpression (the tanh(z W) that a derivative repeats, say) is computed once per call. The
/// operations are the interpreter's (Evaluate); the result runs without building an autograd graph when called under
/// torch.no_grad (as SymbolicAdjoint does).
module NeuralOde.Core.Symbolic.Compile

open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.Symbolic

/// The compiled form: the distinct subexpressions in evaluation order (children before parents), and for each the
/// positions of its operands in that order.
type Compiled internal (nodes: Expr[], operands: int list[], variables: (string * Kind) list) =
    /// The number of distinct subexpressions evaluated per call.
    member _.Operations = nodes.Length
    /// The variables to bind.
    member _.Variables = variables
    /// Evaluates with each variable bound by name (as Evaluate.evaluate); intermediates are freed before returning.
    member _.Invoke(environment: Map<string, torch.Tensor>) : torch.Tensor =
        let dtype, device = Evaluate.dtypeAndDevice environment
        use scope = torch.NewDisposeScope()
        let values = Array.zeroCreate<torch.Tensor> nodes.Length
        for i in 0 .. nodes.Length - 1 do
            values[i] <-
                match nodes[i] with
                | Const _ | Var _ -> Evaluate.leaf environment dtype device nodes[i]
                | node -> Evaluate.operation dtype device node (operands[i] |> List.map (fun k -> values[k]))
        values[nodes.Length - 1].MoveToOuterDisposeScope()

/// Compiles `e`: its distinct subexpressions, each evaluated once per call.
let compile (e: Expr) : Compiled =
    let index = Dictionary<Expr, int>()
    let nodes = List<Expr>()
    let operands = List<int list>()
    let rec visit (e: Expr) : int =
        match index.TryGetValue e with
        | true, i -> i
        | _ ->
            let children = Expr.children e |> List.map visit
            let i = nodes.Count
            nodes.Add e
            operands.Add children
            index[e] <- i
            i
    visit e |> ignore
    Compiled(nodes.ToArray(), operands.ToArray(), Expr.variables e)
