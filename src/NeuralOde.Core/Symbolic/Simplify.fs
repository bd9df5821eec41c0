/// Algebraic simplification of expressions, bottom-up: constant folding, the identities of 0 and 1, x + x = 2x,
/// ones that multiply a tensor of their shape, double negation and transposition — only where no shape is lost (a
/// tensor minus itself stays, since the zero must keep its shape). Derivatives are simplified as they are built so that they stay compact.
module NeuralOde.Core.Symbolic.Simplify

open NeuralOde.Core.Symbolic

let private isConst c e = match e with Const x -> x = c | _ -> false

/// One rewrite step at the root, assuming the children are simplified.
let private step (e: Expr) =
    match e with
    | Add(Const a, Const b) -> Const(a + b)
    | Add(a, b) when isConst 0.0 a && Expr.isScalar b -> b
    | Add(a, b) when isConst 0.0 b -> a
    | Add(a, b) when isConst 0.0 a -> b
    | Add(a, Neg b) -> Sub(a, b)
    // x + x = 2x (structural equality).
    | Add(a, b) when a = b -> Mul(Const 2.0, a)
    // Elementwise operands have one shape (or one is a scalar): ones shaped like a tensor operand change nothing.
    | Mul(OnesLike _, b) when not (Expr.isScalar b) -> b
    | Mul(a, OnesLike _) when not (Expr.isScalar a) -> a
    | Sub(Const a, Const b) -> Const(a - b)
    | Sub(a, b) when isConst 0.0 b -> a
    | Sub(a, b) when isConst 0.0 a -> Neg b
    | Mul(Const a, Const b) -> Const(a * b)
    | Mul(a, b) when isConst 1.0 a -> b
    | Mul(a, b) when isConst 1.0 b -> a
    | Mul(a, b) when (isConst 0.0 a && Expr.isScalar b) || (isConst 0.0 b && Expr.isScalar a) -> Const 0.0
    | Mul(Neg a, Neg b) -> Mul(a, b)
    | Mul(Const c, Mul(Const d, a)) -> Mul(Const(c * d), a)
    | Div(Const a, Const b) when b <> 0.0 -> Const(a / b)
    | Div(a, b) when isConst 1.0 b -> a
    | Neg(Const a) -> Const(-a)
    | Neg(Neg a) -> a
    | Pow(_, 0.0) -> Const 1.0
    | Pow(a, 1.0) -> a
    | Pow(Const a, p) -> Const(a ** p)
    | Transpose(Transpose a) -> a
    | Apply(f, Const c) ->
        match f with
        | Tanh -> Const(tanh c)
        | Sigmoid -> Const(1.0 / (1.0 + exp -c))
        | Softplus -> Const(log (1.0 + exp c))
        | Sin -> Const(sin c)
        | Cos -> Const(cos c)
        | Exp -> Const(exp c)
        | Log -> Const(log c)
    | SumAll(Const c) -> Const c
    // The slice of a concatenation where one of its own parts sits is that part.
    | Part(Concat(ps, k), qs, i, l) when k = l && ps.Length = qs.Length && List.forall2 (fun (p: Expr) q -> p = q) ps qs -> ps[i]
    | Concat([ a ], _) -> a
    | ReduceLike(Const c, _) -> Const c
    | _ -> e

/// The simplified expression (bottom-up, one pass: each rewrite only shrinks the expression), from an explicit stack
/// (Expr.Fold), so that no depth of nesting overflows the thread's stack.
let simplify (e: Expr) : Expr = Expr.Fold(Expr.children, (fun node operands -> step (Expr.withChildren node operands)), e)
