/// Expressions over tensors, the symbolic layer's one internal type (Massaroli et al. 2020 give the gradients of a
/// field in closed form; this is what lets the library derive them for the user's field). A vector field
/// f(s, z; θ) is written as an Expr over named variables — the state, the depth, parameters, data — with elementwise
/// arithmetic, the usual functions, 2-D matrix products, transposes and full sums. Derivatives (Derivative.fs),
/// evaluation on tensors (Evaluate.fs) and rendering (Render.fs) all work on this type.
namespace NeuralOde.Core.Symbolic

/// Whether a variable is a scalar (0-dim, broadcast against tensors) or a tensor.
type Kind =
    /// A 0-dim tensor.
    | Scalar
    /// A tensor of any shape.
    | Tensor

/// The elementwise functions.
type Fn =
    /// tanh.
    | Tanh
    /// The logistic function 1 / (1 + e^−x).
    | Sigmoid
    /// log(1 + e^x).
    | Softplus
    /// sin.
    | Sin
    /// cos.
    | Cos
    /// e^x.
    | Exp
    /// The natural logarithm.
    | Log

/// An expression over named tensors. Elementwise operations take operands of one shape, or a scalar and a tensor
/// (the scalar is broadcast); MatMul takes 2-D operands [n, k] and [k, m]; SumAxis and Concat work along one axis.
[<CustomEquality; NoComparison>]
type Expr =
    /// A number, broadcast against tensors.
    | Const of float
    /// A named tensor, bound when the expression is evaluated.
    | Var of name: string * kind: Kind
    /// a + b.
    | Add of Expr * Expr
    /// a − b.
    | Sub of Expr * Expr
    /// a ⊙ b, elementwise.
    | Mul of Expr * Expr
    /// a / b, elementwise.
    | Div of Expr * Expr
    /// −a.
    | Neg of Expr
    /// a^p for a constant exponent p.
    | Pow of Expr * float
    /// f(a), elementwise.
    | Apply of Fn * Expr
    /// The matrix product A B of 2-D operands.
    | MatMul of Expr * Expr
    /// Aᵀ of a 2-D operand.
    | Transpose of Expr
    /// The sum of all elements: a scalar.
    | SumAll of Expr
    /// A tensor of ones with the shape of the operand (the cotangent of a sum, broadcast back).
    | OnesLike of Expr
    /// The sum over one axis of an operand of rank ≥ 2 (the axis is dropped; negative axes count from the end).
    | SumAxis of Expr * axis: int
    /// The operand, of the shape of `like` without `axis`, repeated along `axis` to the shape of `like` (the
    /// cotangent of a sum over that axis, broadcast back).
    | Spread of Expr * axis: int * like: Expr
    /// The first operand summed down to the shape of `like` (the cotangent of an operand that was broadcast, as a
    /// bias [k] added to a batch [N, k]); the operand itself when the shapes agree.
    | ReduceLike of Expr * like: Expr
    /// The matrix exponential e^M of a square 2-D operand (the closed form of linear fields with commuting θ(s)).
    | MatrixExp of Expr
    /// The Fréchet derivative of the matrix exponential at X in the direction E, L(X, E) = d/dt e^{X + tE} at t = 0
    /// (the upper-right block of e^[[X, E], [0, X]]); its adjoint is L(Xᵀ, ·), so it carries both e^M's JVP and VJP.
    | ExpFrechet of at: Expr * direction: Expr
    /// The operands joined along an axis (their other dimensions agree).
    | Concat of Expr list * axis: int
    /// The slice of the first operand along `axis` where operand `index` of `parts` sits in Concat(parts, axis) (the
    /// cotangent of one part of a concatenation).
    | Part of Expr * parts: Expr list * index: int * axis: int
    /// ψ_index(depth) of a basis (derivative = 0), its derivative ψ′_index(depth) (derivative = 1), or its
    /// antiderivative Ψ_index(depth) = ∫_0^depth ψ_index (derivative = −1): a scalar, for Galerkin parameters
    /// θ(s) = Σ_j α_j ψ_j(s) written inside an expression and for their closed forms.
    | Psi of basis: NeuralOde.Core.Basis * index: int * depth: Expr * derivative: int

    /// Structural equality (used by simplification and common-subexpression elimination).
    override this.Equals(other) =
        match other with
        | :? Expr as o -> Expr.Same(this, o)
        | _ -> false

    override this.GetHashCode() =
        match this with
        | Const c -> hash c
        | Var(n, _) -> hash n
        | Add(a, b) -> 3 * a.GetHashCode() + b.GetHashCode() + 1
        | Sub(a, b) -> 5 * a.GetHashCode() + b.GetHashCode() + 2
        | Mul(a, b) -> 7 * a.GetHashCode() + b.GetHashCode() + 3
        | Div(a, b) -> 11 * a.GetHashCode() + b.GetHashCode() + 4
        | Neg a -> 13 * a.GetHashCode() + 5
        | Pow(a, p) -> 17 * a.GetHashCode() + hash p
        | Apply(f, a) -> 19 * a.GetHashCode() + hash f
        | MatMul(a, b) -> 23 * a.GetHashCode() + b.GetHashCode() + 6
        | Transpose a -> 29 * a.GetHashCode() + 7
        | SumAll a -> 31 * a.GetHashCode() + 8
        | OnesLike a -> 37 * a.GetHashCode() + 9
        | SumAxis(a, k) -> 47 * a.GetHashCode() + k + 10
        | ReduceLike(a, l) -> 71 * a.GetHashCode() + 5 * l.GetHashCode() + 14
        | MatrixExp a -> 73 * a.GetHashCode() + 15
        | ExpFrechet(a, e) -> 79 * a.GetHashCode() + 7 * e.GetHashCode() + 16
        | Spread(a, k, l) -> 53 * a.GetHashCode() + 3 * l.GetHashCode() + k + 11
        | Concat(parts, k) -> parts |> List.fold (fun h p -> 59 * h + p.GetHashCode()) (k + 12)
        | Part(a, parts, i, k) -> parts |> List.fold (fun h p -> 61 * h + p.GetHashCode()) (67 * a.GetHashCode() + 7 * i + k + 13)
        | Psi(b, j, s, d) -> 41 * s.GetHashCode() + 43 * j + d + hash b.Name

    static member private Same(x: Expr, y: Expr) =
        match x, y with
        | Const a, Const b -> a = b || (System.Double.IsNaN a && System.Double.IsNaN b)
        | Var(n, k), Var(m, l) -> n = m && k = l
        | Add(a, b), Add(c, d) | Sub(a, b), Sub(c, d) | Mul(a, b), Mul(c, d) | Div(a, b), Div(c, d)
        | MatMul(a, b), MatMul(c, d) -> Expr.Same(a, c) && Expr.Same(b, d)
        | Neg a, Neg b | Transpose a, Transpose b | SumAll a, SumAll b | OnesLike a, OnesLike b -> Expr.Same(a, b)
        | Pow(a, p), Pow(b, q) -> p = q && Expr.Same(a, b)
        | Apply(f, a), Apply(g, b) -> f = g && Expr.Same(a, b)
        | Psi(b, j, s, d), Psi(c, k, t, e) -> obj.ReferenceEquals(b, c) && j = k && d = e && Expr.Same(s, t)
        | SumAxis(a, k), SumAxis(b, l) -> k = l && Expr.Same(a, b)
        | ReduceLike(a, u), ReduceLike(b, v) | ExpFrechet(a, u), ExpFrechet(b, v) -> Expr.Same(a, b) && Expr.Same(u, v)
        | MatrixExp a, MatrixExp b -> Expr.Same(a, b)
        | Spread(a, k, u), Spread(b, l, v) -> k = l && Expr.Same(a, b) && Expr.Same(u, v)
        | Concat(ps, k), Concat(qs, l) -> k = l && Expr.SameList(ps, qs)
        | Part(a, ps, i, k), Part(b, qs, j, l) -> i = j && k = l && Expr.Same(a, b) && Expr.SameList(ps, qs)
        | _ -> false

    static member private SameList(xs: Expr list, ys: Expr list) =
        xs.Length = ys.Length && List.forall2 (fun x y -> Expr.Same(x, y)) xs ys

    static member (+)(a: Expr, b: Expr) = Add(a, b)
    static member (-)(a: Expr, b: Expr) = Sub(a, b)
    /// Elementwise product (⊙).
    static member (*)(a: Expr, b: Expr) = Mul(a, b)
    static member (/)(a: Expr, b: Expr) = Div(a, b)
    static member (~-)(a: Expr) = Neg a
    static member (+)(a: Expr, c: float) = Add(a, Const c)
    static member (+)(c: float, a: Expr) = Add(Const c, a)
    static member (*)(c: float, a: Expr) = Mul(Const c, a)
    static member (*)(a: Expr, c: float) = Mul(a, Const c)
    static member (-)(c: float, a: Expr) = Sub(Const c, a)
    static member (-)(a: Expr, c: float) = Sub(a, Const c)
    /// sin, so that F#'s `sin e` builds an expression.
    static member Sin(a: Expr) = Apply(Fn.Sin, a)
    /// cos, so that F#'s `cos e` builds an expression.
    static member Cos(a: Expr) = Apply(Fn.Cos, a)
    /// exp, so that F#'s `exp e` builds an expression.
    static member Exp(a: Expr) = Apply(Fn.Exp, a)
    /// log, so that F#'s `log e` builds an expression.
    static member Log(a: Expr) = Apply(Fn.Log, a)
    /// tanh, so that F#'s `tanh e` builds an expression.
    static member Tanh(a: Expr) = Apply(Fn.Tanh, a)

/// Building expressions.
module Expr =
    /// A tensor variable.
    let tensor (name: string) = Var(name, Tensor)
    /// A scalar variable (0-dim, broadcast).
    let scalar (name: string) = Var(name, Scalar)
    /// A constant.
    let constant (c: float) = Const c
    /// Matrix product of 2-D operands.
    let matmul a b = MatMul(a, b)
    /// Transpose of a 2-D operand.
    let transpose a = Transpose a
    /// Sum of all elements.
    let sum a = SumAll a
    /// Sum over one axis of an operand of rank ≥ 2 (the axis is dropped; −1 is the last). Evaluating it with an axis
    /// outside [−rank, rank − 1] raises ArgumentOutOfRangeException naming sumAxis, the value and the range.
    let sumAxis a (axis: int) = SumAxis(a, axis)
    /// The matrix exponential e^a of a square 2-D operand.
    let matrixExp a = MatrixExp a
    /// The operands joined along `axis` (−1: the last).
    let concat (parts: Expr list) (axis: int) =
        if List.isEmpty parts then raise (System.ArgumentException("A concatenation needs at least one operand.", "parts"))
        Concat(parts, axis)
    /// a^p.
    let pow a p = Pow(a, p)
    /// tanh a.
    let tanh a = Apply(Tanh, a)
    /// The logistic sigmoid.
    let sigmoid a = Apply(Sigmoid, a)
    /// log(1 + e^a).
    let softplus a = Apply(Softplus, a)
    /// sin a.
    let sin a = Apply(Sin, a)
    /// cos a.
    let cos a = Apply(Cos, a)
    /// e^a.
    let exp a = Apply(Exp, a)
    /// log a.
    let log a = Apply(Log, a)
    /// ψ_j(s) of `basis` (j from 0), at the scalar depth expression `s`.
    let psi (basis: NeuralOde.Core.Basis) (j: int) (s: Expr) =
        if j < 0 || j >= basis.Terms then
            raise (System.ArgumentOutOfRangeException("j", j, $"j must index one of the basis's {basis.Terms} functions (0 to {basis.Terms - 1}); got {j}."))
        Psi(basis, j, s, 0)
    /// θ(s) = Σ_j α_j ψ_j(s) for coefficient expressions α_0 … α_{m−1} (each shaped like θ).
    let galerkin (basis: NeuralOde.Core.Basis) (coefficients: Expr list) (s: Expr) =
        if coefficients.Length <> basis.Terms then
            raise (System.ArgumentException($"{basis} has {basis.Terms} functions; got {coefficients.Length} coefficients.", "coefficients"))
        coefficients |> List.mapi (fun j a -> Mul(a, psi basis j s)) |> List.reduce (fun x y -> Add(x, y))

    /// Whether an expression's value is a scalar (0-dim): constants, scalar variables, sums, and elementwise
    /// combinations of scalars.
    let rec isScalar (e: Expr) =
        match e with
        | Const _ -> true
        | Var(_, k) -> k = Scalar
        | SumAll _ -> true
        | Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) -> isScalar a && isScalar b
        | Neg a | Pow(a, _) | Apply(_, a) -> isScalar a
        | Psi(_, _, s, _) -> isScalar s
        | MatMul _ | Transpose _ | OnesLike _ | SumAxis _ | Spread _ | Concat _ | Part _ | ReduceLike _ | MatrixExp _ | ExpFrechet _ -> false

    /// The operands of an expression's root, in order (none for constants and variables; a basis function's depth).
    let children (e: Expr) : Expr list =
        match e with
        | Const _ | Var _ -> []
        | Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | MatMul(a, b) -> [ a; b ]
        | Neg a | Pow(a, _) | Apply(_, a) | Transpose a | SumAll a | OnesLike a | Psi(_, _, a, _) | SumAxis(a, _) -> [ a ]
        | Spread(a, _, like) | ReduceLike(a, like) | ExpFrechet(a, like) -> [ a; like ]
        | MatrixExp a -> [ a ]
        | Concat(parts, _) -> parts
        | Part(a, parts, _, _) -> a :: parts

    /// The names and kinds of the variables an expression uses, each once, in order of first use.
    let variables (e: Expr) =
        let seen = System.Collections.Generic.List<string * Kind>()
        let rec walk e =
            match e with
            | Var(n, k) -> if not (seen.Contains((n, k))) then seen.Add((n, k))
            | _ -> children e |> List.iter walk
        walk e
        List.ofSeq seen

    /// The number of distinct subexpressions (the size of the expression as a graph with shared nodes).
    let size (e: Expr) =
        let seen = System.Collections.Generic.HashSet<Expr>()
        let rec walk e = if seen.Add e then children e |> List.iter walk
        walk e
        seen.Count
