/// Symbolic derivatives of expressions: the vector–Jacobian product (reverse mode) with respect to every variable
/// at once, and the Jacobian–vector product (forward mode). These are the building blocks of the paper's formulas:
/// the adjoint system ȧ = −aᵀ ∂f/∂z − ∂l/∂z, Theorem 1's δL/δθ(s) = aᵀ ∂f/∂θ(s), Corollary 1's projections.
/// Rules (d = the cotangent): a ± b → d, ±d; a ⊙ b → d ⊙ b, d ⊙ a; a / b → d / b, −d ⊙ a / b²; a^p → p d ⊙ a^(p−1);
/// f(a) → d ⊙ f′(a); A B → d Bᵀ, Aᵀ d; Aᵀ → dᵀ; Σ a → d·1; Σ_k a → d spread along k; [a, b]_k → d's slices. A scalar operand of a tensor operation receives the sum of
/// its cotangent (broadcasting in reverse).
module NeuralOde.Core.Symbolic.Derivative

open NeuralOde.Core.Symbolic

/// f′(a) as an expression.
let derivativeOf (f: Fn) (a: Expr) =
    match f with
    | Tanh -> Sub(Const 1.0, Pow(Apply(Tanh, a), 2.0))
    | Sigmoid -> Mul(Apply(Sigmoid, a), Sub(Const 1.0, Apply(Sigmoid, a)))
    | Softplus -> Apply(Sigmoid, a)
    | Sin -> Apply(Cos, a)
    | Cos -> Neg(Apply(Sin, a))
    | Exp -> Apply(Exp, a)
    | Log -> Div(Const 1.0, a)

/// The cotangent `d` reduced to the shape of `operand`: summed when the operand is a scalar and `d` is not.
let private reduceTo (isScalar: Expr -> bool) (operand: Expr) (d: Expr) =
    if isScalar operand && not (isScalar d) then SumAll d else d

/// The pieces of dᵀ ∂e/∂v that reach the root's operands: each operand with its cotangent, in the operands' order.
let private pullBack (isScalar: Expr -> bool) (e: Expr) (d: Expr) : (Expr * Expr) list =
    let reduceTo = reduceTo isScalar
    match e with
    | Const _ | Var _ | OnesLike _ -> []
    | Add(a, b) -> [ a, reduceTo a d; b, reduceTo b d ]
    | Sub(a, b) -> [ a, reduceTo a d; b, reduceTo b (Neg d) ]
    | Mul(a, b) -> [ a, reduceTo a (Mul(d, b)); b, reduceTo b (Mul(d, a)) ]
    | Div(a, b) -> [ a, reduceTo a (Div(d, b)); b, reduceTo b (Neg(Div(Mul(d, a), Pow(b, 2.0)))) ]
    | Neg a -> [ a, Neg d ]
    | Pow(a, p) -> [ a, Mul(d, Mul(Const p, Pow(a, p - 1.0))) ]
    | Apply(f, a) -> [ a, Mul(d, derivativeOf f a) ]
    | MatMul(a, b) -> [ a, MatMul(d, Transpose b); b, MatMul(Transpose a, d) ]
    | Transpose a -> [ a, Transpose d ]
    | SumAll a -> [ a, (if isScalar a then d else Mul(d, OnesLike a)) ]
    | SumAxis(a, k) -> [ a, Spread(d, k, a) ]
    // d/dM ⟨D, e^M⟩ = L(Mᵀ, D) (the Fréchet derivative's adjoint).
    | MatrixExp m -> [ m, ExpFrechet(Transpose m, d) ]
    | ExpFrechet _ -> raise (System.NotSupportedException("A second derivative of the matrix exponential is not available."))
    | ReduceLike _ -> raise (System.NotSupportedException("A derivative through a broadcast's reduction (a second derivative with respect to a broadcast variable) is not available."))
    | Spread(a, k, _) -> [ a, SumAxis(d, k) ]
    | Concat(parts, k) -> parts |> List.mapi (fun i p -> p, Part(d, parts, i, k))
    | Part(a, parts, i, k) ->
        // The slice's cotangent goes back to its place; the other places get zeros shaped like their parts.
        [ a, Concat(parts |> List.mapi (fun j p -> if j = i then d else Mul(Const 0.0, OnesLike p)), k) ]
    | Psi(b, j, s, order) when order = 0 || order = -1 -> [ s, reduceTo s (Mul(d, Psi(b, j, s, order + 1))) ]
    | Psi _ -> raise (System.NotSupportedException("A basis function's second derivative is not available: differentiate ψ′_j(s) with respect to the depth only once."))

/// dᵀ ∂e/∂v for every variable v of `e`, with `cotangent` d shaped like e: a map from variable name to an expression
/// shaped like that variable. Variables e does not use are absent. Simplified. The cotangents are pushed down from
/// an explicit stack, operands left to right, so that no depth of nesting overflows the thread's stack.
let vjp (e: Expr) (cotangent: Expr) : Map<string, Expr> =
    let pending = System.Collections.Generic.Stack<Expr * Expr>([ e, cotangent ])
    let mutable gradients = Map.empty
    let isScalar = Expr.scalarness ()
    while pending.Count > 0 do
        match pending.Pop() with
        | (Var(name, kind) as v), d ->
            // A tensor variable's cotangent is summed down to its shape where it was broadcast (a bias [k] in a batch).
            let piece = if kind = Tensor && not (isScalar d) then ReduceLike(d, v) else reduceTo isScalar v d
            gradients <- gradients |> Map.add name (match Map.tryFind name gradients with Some g -> Add(g, piece) | None -> piece)
        | node, d -> for operand in List.rev (pullBack isScalar node d) do pending.Push operand
    gradients |> Map.map (fun _ v -> Simplify.simplify v)

/// ∂e/∂v · t summed over the variables v given tangents t (shaped like v): the directional derivative of e, shaped
/// like e. Variables without a tangent are held fixed. Simplified.
let jvp (e: Expr) (tangents: Map<string, Expr>) : Expr =
    // The operands whose tangents reach the root's (the shape-giving operands carry none).
    let differentiated (e: Expr) =
        match e with
        | Spread(a, _, _) | ReduceLike(a, _) | Part(a, _, _, _) -> [ a ]
        | _ -> Expr.children e
    // The tangent of `e` from its differentiated operands' tangents (bottom-up from an explicit stack, Expr.Fold).
    let tangentOf (e: Expr) (operandTangents: Expr list) : Expr =
        let go (operand: Expr) = operandTangents[List.findIndex (fun o -> obj.ReferenceEquals(o, operand)) (differentiated e)]
        match e with
        | Const _ | OnesLike _ -> Const 0.0
        | Var(name, _) -> defaultArg (Map.tryFind name tangents) (Const 0.0)
        | Add(a, b) -> Add(go a, go b)
        | Sub(a, b) -> Sub(go a, go b)
        | Mul(a, b) -> Add(Mul(go a, b), Mul(a, go b))
        | Div(a, b) -> Sub(Div(go a, b), Div(Mul(a, go b), Pow(b, 2.0)))
        | Neg a -> Neg(go a)
        | Pow(a, p) -> Mul(Mul(Const p, Pow(a, p - 1.0)), go a)
        | Apply(f, a) -> Mul(derivativeOf f a, go a)
        | MatMul(a, b) ->
            // A zero tangent is the scalar 0, which has no matrix shape: drop the term instead.
            let left = match go a with Const 0.0 -> None | ta -> Some(MatMul(ta, b))
            let right = match go b with Const 0.0 -> None | tb -> Some(MatMul(a, tb))
            match left, right with
            | Some l, Some r -> Add(l, r)
            | Some l, None -> l
            | None, Some r -> r
            | None, None -> Const 0.0
        | Transpose a -> match go a with Const 0.0 -> Const 0.0 | t -> Transpose t
        | SumAll a -> match go a with Const 0.0 -> Const 0.0 | t -> SumAll t
        | SumAxis(a, k) -> match go a with Const 0.0 -> Const 0.0 | t -> SumAxis(t, k)
        | ReduceLike(a, like) -> match go a with Const 0.0 -> Const 0.0 | t -> ReduceLike(t, like)
        | MatrixExp m -> match go m with Const 0.0 -> Const 0.0 | t -> ExpFrechet(m, t)
        | ExpFrechet(a, e) ->
            match go a, go e with
            | Const 0.0, Const 0.0 -> Const 0.0
            | Const 0.0, te -> ExpFrechet(a, te)   // linear in the direction
            | _ -> raise (System.NotSupportedException("A second derivative of the matrix exponential is not available."))
        | Spread(a, k, like) -> match go a with Const 0.0 -> Const 0.0 | t -> Spread(t, k, like)
        | Concat(parts, k) ->
            let tangents = parts |> List.map go
            if tangents |> List.forall (fun t -> t = Const 0.0) then Const 0.0
            // A zero tangent has no shape to join: zeros shaped like its part stand in.
            else Concat(List.map2 (fun t p -> if t = Const 0.0 then Mul(Const 0.0, OnesLike p) else t) tangents parts, k)
        | Part(a, parts, i, k) -> match go a with Const 0.0 -> Const 0.0 | t -> Part(t, parts, i, k)
        | Psi(b, j, s, order) when order = 0 || order = -1 -> Mul(Psi(b, j, s, order + 1), go s)
        | Psi(_, _, s, _) ->
            match go s with
            | Const 0.0 -> Const 0.0
            | _ -> raise (System.NotSupportedException("A basis function's second derivative is not available: differentiate ψ′_j(s) with respect to the depth only once."))
    Simplify.simplify (Expr.Fold(differentiated, tangentOf, e))
