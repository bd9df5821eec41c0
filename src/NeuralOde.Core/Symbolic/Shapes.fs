/// The shape of an expression's value inferred from the shapes bound to its variables, without evaluating anything
/// (the rules of Evaluate.operation and libtorch's broadcasting): a symbolic field checks its parameters against the
/// state this way before its first evaluation, so a parameter of the wrong shape is named instead of surfacing as
/// libtorch's message from deep inside a compiled derivative.
module internal NeuralOde.Core.Symbolic.Shapes

open System
open NeuralOde.Core.Symbolic

/// A shape as text, e.g. [4, 2].
let text (shape: int64[]) = "[" + String.Join(", ", shape) + "]"

/// `axis` of Expr.sumAxis as an index into an operand of rank `rank` (negative axes count from the end); raises
/// ArgumentOutOfRangeException naming sumAxis, the value and the valid range [−rank, rank − 1].
let sumAxis (rank: int) (axis: int) =
    if axis < -rank || axis >= rank then
        raise (ArgumentOutOfRangeException("sumAxis", axis, $"sumAxis's axis must lie in [{-rank}, {rank - 1}] for an operand of rank {rank}; got {axis}."))
    if axis < 0 then rank + axis else axis

/// The variables of `e` with their bound shapes, e.g. "W [3, 3], z [5, 2]".
let private involved (shapes: Map<string, int64[]>) (e: Expr) =
    Expr.variables e |> List.choose (fun (n, _) -> Map.tryFind n shapes |> Option.map (fun s -> $"'{n}' {text s}")) |> String.concat ", "

/// The shape of `e`'s value with each variable bound to the shape in `shapes`; raises ArgumentException ("e") at the
/// first operation whose operands do not fit, naming it, the operands' shapes and the variables they involve (and
/// ArgumentOutOfRangeException for a sumAxis outside its operand's rank).
let infer (shapes: Map<string, int64[]>) (e: Expr) : int64[] =
    let rec go (e: Expr) : int64[] =
        let fail (what: string) (operands: (Expr * int64[]) list) =
            let given = operands |> List.map (fun (_, s) -> text s) |> String.concat " and "
            raise (ArgumentException($"{what} does not fit operands of shapes {given} (from {involved shapes e}).", "e"))
        let broadcast (a: Expr) (b: Expr) (what: string) =
            let sa, sb = go a, go b
            let n = max sa.Length sb.Length
            let at (s: int64[]) i = if i < n - s.Length then 1L else s[i - (n - s.Length)]
            Array.init n (fun i ->
                match at sa i, at sb i with
                | x, y when x = y -> x
                | 1L, y -> y
                | x, 1L -> x
                | _ -> fail what [ a, sa; b, sb ])
        match e with
        | Const _ | SumAll _ | Psi _ -> [||]
        | Var(n, _) ->
            match Map.tryFind n shapes with
            | Some s -> s
            | None -> raise (ArgumentException($"The variable '{n}' is not bound in the environment.", "environment"))
        | Add(a, b) -> broadcast a b "a sum"
        | Sub(a, b) -> broadcast a b "a difference"
        | Mul(a, b) -> broadcast a b "a product"
        | Div(a, b) -> broadcast a b "a quotient"
        | Neg a | Pow(a, _) | Apply(_, a) | OnesLike a -> go a
        | ExpFrechet(a, _) | MatrixExp a ->
            let s = go a
            if s.Length <> 2 || s[0] <> s[1] then fail "the matrix exponential (a square 2-D operand)" [ a, s ] else s
        | MatMul(a, b) ->
            let sa, sb = go a, go b
            if sa.Length <> 2 || sb.Length <> 2 || sa[1] <> sb[0] then fail "a matrix product ([n, k] by [k, m])" [ a, sa; b, sb ]
            else [| sa[0]; sb[1] |]
        | Transpose a ->
            let s = go a
            if s.Length > 2 then fail "a transpose (a 2-D operand)" [ a, s ] else Array.rev s
        | SumAxis(a, k) ->
            let s = go a
            if s.Length < 2 then fail $"a sum over axis {k} (an operand of rank 2 or more)" [ a, s ]
            let i = sumAxis s.Length k
            Array.append s[.. i - 1] s[i + 1 ..]
        | Spread(_, _, like) | ReduceLike(_, like) -> go like
        | Part(_, parts, i, _) -> go parts[i]
        | Concat(parts, k) ->
            let shapes = parts |> List.map (fun p -> p, go p)
            let _, first = shapes.Head
            let i = if k < 0 then first.Length + k else k
            let fits (s: int64[]) = s.Length = first.Length && Array.forall2 (fun (x: int64) y -> x = y) (Array.removeAt i s) (Array.removeAt i first)
            if i < 0 || i >= first.Length || not (shapes |> List.forall (snd >> fits)) then fail $"a concatenation along axis {k}" shapes
            else Array.updateAt i (shapes |> List.sumBy (fun (_, s) -> s[i])) first
    go e
