/// Compiling an expression once into a function of its variables, with common subexpressions shared: every
/// structurally equal subexpression (the tanh(z W) that a derivative repeats, say) is computed once per call. The
/// operations are the interpreter's (Evaluate); the result runs without building an autograd graph when called under
/// torch.no_grad (as SymbolicAdjoint does).
module NeuralOde.Core.Symbolic.Compile

open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.Symbolic

/// The compiled form: the distinct subexpressions in evaluation order (children before parents), for each the
/// positions of its operands in that order, and the positions of the results.
type Compiled internal (nodes: Expr[], operands: int list[], roots: int[], variables: (string * Kind) list) =
    /// The values of every node, intermediates in the caller's scope.
    let run (environment: Map<string, torch.Tensor>) =
        let dtype, device = Evaluate.dtypeAndDevice environment
        let values = Array.zeroCreate<torch.Tensor> nodes.Length
        for i in 0 .. nodes.Length - 1 do
            values[i] <-
                match nodes[i] with
                | Const _ | Var _ -> Evaluate.leaf environment dtype device nodes[i]
                | node -> Evaluate.operation dtype device node (operands[i] |> List.map (fun k -> values[k]))
        values
    /// The number of distinct subexpressions evaluated per call.
    member _.Operations = nodes.Length
    /// The variables to bind (of every result).
    member _.Variables = variables
    /// The number of results.
    member _.Results = roots.Length
    /// Evaluates the first result with each variable bound by name (as Evaluate.evaluate); intermediates are freed
    /// before returning.
    member _.Invoke(environment: Map<string, torch.Tensor>) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        let values = run environment
        values[roots[0]].MoveToOuterDisposeScope()
    /// Evaluates every result, sharing the subexpressions they have in common; intermediates are freed before
    /// returning. A result equal to another is returned as its own tensor.
    member _.InvokeAll(environment: Map<string, torch.Tensor>) : torch.Tensor[] =
        use scope = torch.NewDisposeScope()
        let values = run environment
        let taken = HashSet<int>()
        roots |> Array.map (fun r -> (if taken.Add r then values[r] else values[r].alias()).MoveToOuterDisposeScope())

/// Compiles several expressions together: their distinct subexpressions, each evaluated once per call.
let compileAll (es: Expr list) : Compiled =
    if List.isEmpty es then raise (System.ArgumentException("Give at least one expression to compile.", "es"))
    let nodes, operands, roots = Expr.distinct es
    let variables = es |> List.collect Expr.variables |> List.distinct
    Compiled(nodes, operands, Array.ofList roots, variables)

/// Compiles `e`: its distinct subexpressions, each evaluated once per call.
let compile (e: Expr) : Compiled = compileAll [ e ]
