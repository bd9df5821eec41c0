/// The F# front end: a field written as an ordinary F# lambda over expressions, quoted, becomes an Expr —
///     Quotation.toExpr [ "theta" ] <@ fun (z: Expr) (theta: Expr) -> theta * z + sin z @>
/// The lambda's parameters become the variables (by name; those listed as scalars are 0-dim, the rest tensors);
/// + − * / and unary minus, sin, cos, exp, log, tanh, the Expr module's functions (Expr.sigmoid, Expr.softplus,
/// Expr.pow, Expr.matmul, Expr.transpose, Expr.sum, Expr.sumAxis, Expr.concat, ...), float constants and let bindings are translated. Anything
/// else raises ArgumentException naming the construct.
module NeuralOde.Core.Symbolic.Quotation

open System
open Microsoft.FSharp.Quotations
open NeuralOde.Core.Symbolic

type private Expr = NeuralOde.Core.Symbolic.Expr

let private unsupported (what: string) =
    ArgumentException($"The quoted field uses {what}, which the symbolic layer does not translate. Use + - * /, sin, cos, exp, log, tanh, the Expr module's functions (sigmoid, softplus, pow, matmul, transpose, sum, sumAxis, concat) and float constants.", "quotation")

/// The expression of a quoted lambda `fun v1 v2 ... -> body` over Expr values; the parameters named in `scalars`
/// are scalar variables. Returns the expression; its variables are the lambda's parameters that the body uses.
let toExpr (scalars: string list) (quotation: Microsoft.FSharp.Quotations.Expr) : NeuralOde.Core.Symbolic.Expr =
    let rec parameters (q: Microsoft.FSharp.Quotations.Expr) (env: Map<string, Expr>) =
        match q with
        | Patterns.Lambda(v, body) ->
            if v.Type <> typeof<Expr> then raise (unsupported $"a parameter '{v.Name}' of type {v.Type.Name} (parameters must be Expr)")
            let kind = if List.contains v.Name scalars then Scalar else Tensor
            parameters body (env |> Map.add v.Name (Expr.Var(v.Name, kind)))
        | body -> translate env body
    and translate (env: Map<string, Expr>) (q: Microsoft.FSharp.Quotations.Expr) : Expr =
        let go = translate env
        match q with
        | Patterns.Var v ->
            match Map.tryFind v.Name env with
            | Some e -> e
            | None -> raise (unsupported $"the free variable '{v.Name}'")
        | Patterns.Value(:? float as c, _) -> Const c
        | Patterns.Value(:? int as c, _) -> Const(float c)
        | Patterns.Let(v, value, body) -> translate (env |> Map.add v.Name (go value)) body
        | Patterns.Call(None, m, args) ->
            match m.Name, args with
            | "op_Addition", [ a; b ] -> Add(go a, go b)
            | "op_Subtraction", [ a; b ] -> Sub(go a, go b)
            | "op_Multiply", [ a; b ] -> Mul(go a, go b)
            | "op_Division", [ a; b ] -> Div(go a, go b)
            | "op_UnaryNegation", [ a ] -> Neg(go a)
            | ("Sin" | "sin"), [ a ] -> Apply(Sin, go a)
            | ("Cos" | "cos"), [ a ] -> Apply(Cos, go a)
            | ("Exp" | "exp"), [ a ] -> Apply(Exp, go a)
            | ("Log" | "log"), [ a ] -> Apply(Log, go a)
            | ("Tanh" | "tanh"), [ a ] -> Apply(Tanh, go a)
            | "sigmoid", [ a ] -> Apply(Sigmoid, go a)
            | "softplus", [ a ] -> Apply(Softplus, go a)
            | "pow", [ a; p ] ->
                match go p with
                | Const c -> Pow(go a, c)
                | _ -> raise (unsupported "a power whose exponent is not a constant")
            | "matmul", [ a; b ] -> MatMul(go a, go b)
            | "transpose", [ a ] -> Transpose(go a)
            | "sum", [ a ] -> SumAll(go a)
            | "sumAxis", [ a; k ] ->
                match k with
                | Patterns.Value(:? int as axis, _) -> SumAxis(go a, axis)
                | _ -> raise (unsupported "a sum over an axis that is not an integer constant")
            | "concat", [ parts; k ] ->
                let rec items (q: Microsoft.FSharp.Quotations.Expr) =
                    match q with
                    | Patterns.NewUnionCase(case, [ head; tail ]) when case.Name = "Cons" -> go head :: items tail
                    | Patterns.NewUnionCase(case, []) when case.Name = "Empty" -> []
                    | _ -> raise (unsupported "a concatenation whose operands are not a list literal")
                match k with
                | Patterns.Value(:? int as axis, _) -> Concat(items parts, axis)
                | _ -> raise (unsupported "a concatenation along an axis that is not an integer constant")
            | "constant", [ c ] -> go c
            | name, _ -> raise (unsupported $"the function '{name}'")
        | Patterns.NewUnionCase(case, args) when case.DeclaringType = typeof<Expr> ->
            match case.Name, args with
            | "Const", [ c ] -> go c
            | "Add", [ a; b ] -> Add(go a, go b)
            | "Sub", [ a; b ] -> Sub(go a, go b)
            | "Mul", [ a; b ] -> Mul(go a, go b)
            | "Div", [ a; b ] -> Div(go a, go b)
            | "Neg", [ a ] -> Neg(go a)
            | "MatMul", [ a; b ] -> MatMul(go a, go b)
            | "Transpose", [ a ] -> Transpose(go a)
            | "SumAll", [ a ] -> SumAll(go a)
            | "Pow", [ a; Patterns.Value(:? float as p, _) ] -> Pow(go a, p)
            | "Apply", [ Patterns.NewUnionCase(f, []); a ] when f.DeclaringType = typeof<Fn> ->
                let fn = Reflection.FSharpValue.MakeUnion(f, [||]) :?> Fn
                Apply(fn, go a)
            | name, _ -> raise (unsupported $"the union case '{name}' with these arguments")
        | other -> raise (unsupported $"the construct {other.GetType().Name}: {other}")
    parameters quotation Map.empty
