/// Expressions over tensors, the symbolic layer's one internal type (Massaroli et al. 2020 give the gradients of a
/// field in closed form; this is what lets the library derive them for the user's field). A vector field
/// f(s, z; θ) is written as an Expr over named variables — the state, the depth, parameters, data — with elementwise
/// arithmetic, the usual functions, 2-D matrix products, transposes and full sums. Derivatives (Derivative.fs),
/// evaluation on tensors (Evaluate.fs) and rendering (Render.fs) all work on this type.
namespace NeuralOde.Core.Symbolic

open System
open System.Collections.Generic

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

    /// Structural equality (used by simplification and common-subexpression elimination), without recursion.
    override this.Equals(other) =
        match other with
        | :? Expr as o -> Expr.Same(this, o)
        | _ -> false

    /// A structural hash, without recursion (each shared node, by reference, hashed once).
    override this.GetHashCode() =
        Expr.Fold(Expr.Operands, (fun e hashes -> hashes |> List.fold (fun h c -> 31 * h + c) (Expr.RootHash e)), this)

    /// The operands of an expression's root, in order (none for constants and variables; a basis function's depth).
    static member internal Operands(e: Expr) : Expr list =
        match e with
        | Const _ | Var _ -> []
        | Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | MatMul(a, b) -> [ a; b ]
        | Neg a | Pow(a, _) | Apply(_, a) | Transpose a | SumAll a | OnesLike a | Psi(_, _, a, _) | SumAxis(a, _) -> [ a ]
        | Spread(a, _, like) | ReduceLike(a, like) | ExpFrechet(a, like) -> [ a; like ]
        | MatrixExp a -> [ a ]
        | Concat(parts, _) -> parts
        | Part(a, parts, _, _) -> a :: parts

    /// A post-order fold with an explicit stack instead of recursion, so that an expression nested arbitrarily deep
    /// cannot overflow the thread's stack: `combine node results`, with the results of `operandsOf node` in order
    /// (operands are visited left to right); each node, by reference, is combined once.
    static member internal Fold<'r>(operandsOf: Expr -> Expr list, combine: Expr -> 'r list -> 'r, root: Expr) : 'r =
        let results = Dictionary<Expr, 'r>(HashIdentity.Reference)
        let pending = Stack<struct (Expr * bool)>()
        pending.Push(struct (root, false))
        while pending.Count > 0 do
            let struct (node, expanded) = pending.Pop()
            if not (results.ContainsKey node) then
                if expanded then results[node] <- combine node (operandsOf node |> List.map (fun c -> results[c]))
                else
                    pending.Push(struct (node, true))
                    for c in List.rev (operandsOf node) do
                        if not (results.ContainsKey c) then pending.Push(struct (c, false))
        results[root]

    /// Whether the roots agree, operands aside.
    static member private SameRoot(x: Expr, y: Expr) =
        match x, y with
        | Const a, Const b -> a = b || (Double.IsNaN a && Double.IsNaN b)
        | Var(n, k), Var(m, l) -> n = m && k = l
        | Pow(_, p), Pow(_, q) -> p = q
        | Apply(f, _), Apply(g, _) -> f = g
        | SumAxis(_, k), SumAxis(_, l) | Spread(_, k, _), Spread(_, l, _) | Concat(_, k), Concat(_, l) -> k = l
        | Part(_, _, i, k), Part(_, _, j, l) -> i = j && k = l
        | Psi(b, j, _, d), Psi(c, k, _, e) -> obj.ReferenceEquals(b, c) && j = k && d = e
        | Add _, Add _ | Sub _, Sub _ | Mul _, Mul _ | Div _, Div _ | MatMul _, MatMul _ | Neg _, Neg _
        | Transpose _, Transpose _ | SumAll _, SumAll _ | OnesLike _, OnesLike _ | ReduceLike _, ReduceLike _
        | MatrixExp _, MatrixExp _ | ExpFrechet _, ExpFrechet _ -> true
        | _ -> false

    /// The hash of the root, operands aside (a prime per case, mixed with what the case holds besides operands).
    static member private RootHash(e: Expr) =
        match e with
        | Const c -> hash c
        | Var(n, _) -> hash n
        | Add _ -> 3
        | Sub _ -> 5
        | Mul _ -> 7
        | Div _ -> 11
        | Neg _ -> 13
        | Pow(_, p) -> 17 + hash p
        | Apply(f, _) -> 19 + hash f
        | MatMul _ -> 23
        | Transpose _ -> 29
        | SumAll _ -> 31
        | OnesLike _ -> 37
        | Psi(b, j, _, d) -> 41 + 43 * j + d + hash b.Name
        | SumAxis(_, k) -> 47 + k
        | Spread(_, k, _) -> 53 + k
        | Concat(_, k) -> 59 + k
        | Part(_, _, i, k) -> 61 + 7 * i + k
        | ReduceLike _ -> 71
        | MatrixExp _ -> 73
        | ExpFrechet _ -> 79

    /// Structural equality, pair by pair from an explicit stack.
    static member private Same(x: Expr, y: Expr) =
        let pending = Stack<struct (Expr * Expr)>()
        pending.Push(struct (x, y))
        let mutable same = true
        while same && pending.Count > 0 do
            let struct (a, b) = pending.Pop()
            if not (obj.ReferenceEquals(a, b)) then
                let xs, ys = Expr.Operands a, Expr.Operands b
                if Expr.SameRoot(a, b) && xs.Length = ys.Length then List.iter2 (fun p q -> pending.Push(struct (p, q))) xs ys
                else same <- false
        same

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

    /// Whether an expression's value is a scalar, remembered per node by reference across calls of the returned
    /// function: for a pass that asks it of many nodes sharing operands (a derivative asks it of every operand and
    /// cotangent, whose chains would otherwise be walked again at every level). From an explicit stack, no recursion.
    let internal scalarness () : Expr -> bool =
        let known = Dictionary<Expr, bool>(HashIdentity.Reference)
        // The operands whose scalarness decides the node's, and whether the node's own operation keeps a scalar.
        let decided (node: Expr) =
            match node with
            | Const _ | SumAll _ -> [], true
            | Var(_, k) -> [], (k = Scalar)
            | Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) -> [ a; b ], true
            | Neg a | Pow(a, _) | Apply(_, a) | Psi(_, _, a, _) -> [ a ], true
            | MatMul _ | Transpose _ | OnesLike _ | SumAxis _ | Spread _ | Concat _ | Part _ | ReduceLike _ | MatrixExp _ | ExpFrechet _ -> [], false
        fun (e: Expr) ->
            let pending = Stack<struct (Expr * bool)>([ struct (e, false) ])
            while pending.Count > 0 do
                let struct (node, expanded) = pending.Pop()
                if not (known.ContainsKey node) then
                    let operands, own = decided node
                    if expanded then known[node] <- own && operands |> List.forall (fun o -> known[o])
                    else
                        pending.Push(struct (node, true))
                        for o in operands do if not (known.ContainsKey o) then pending.Push(struct (o, false))
            known[e]

    /// Whether an expression's value is a scalar (0-dim): constants, scalar variables, sums, and elementwise
    /// combinations of scalars.
    let isScalar (e: Expr) = scalarness () e

    /// The operands of an expression's root, in order (none for constants and variables; a basis function's depth).
    let children (e: Expr) : Expr list = Expr.Operands e

    /// `e`'s root over new operands (in the order of `children`).
    let withChildren (e: Expr) (operands: Expr list) : Expr =
        match e, operands with
        | (Const _ | Var _), [] -> e
        | Add _, [ a; b ] -> Add(a, b)
        | Sub _, [ a; b ] -> Sub(a, b)
        | Mul _, [ a; b ] -> Mul(a, b)
        | Div _, [ a; b ] -> Div(a, b)
        | MatMul _, [ a; b ] -> MatMul(a, b)
        | Neg _, [ a ] -> Neg a
        | Pow(_, p), [ a ] -> Pow(a, p)
        | Apply(f, _), [ a ] -> Apply(f, a)
        | Transpose _, [ a ] -> Transpose a
        | SumAll _, [ a ] -> SumAll a
        | OnesLike _, [ a ] -> OnesLike a
        | SumAxis(_, k), [ a ] -> SumAxis(a, k)
        | ReduceLike _, [ a; like ] -> ReduceLike(a, like)
        | MatrixExp _, [ a ] -> MatrixExp a
        | ExpFrechet _, [ a; direction ] -> ExpFrechet(a, direction)
        | Spread(_, k, _), [ a; like ] -> Spread(a, k, like)
        | Concat(_, k), parts -> Concat(parts, k)
        | Part(_, _, i, k), a :: parts -> Part(a, parts, i, k)
        | Psi(b, j, _, d), [ s ] -> Psi(b, j, s, d)
        | _ -> raise (ArgumentException($"{operands.Length} operand(s) do not fit the expression's root.", "operands"))

    /// The names and kinds of the variables an expression uses, each once, in order of first use.
    let variables (e: Expr) =
        let seen = List<string * Kind>()
        let known = HashSet<string * Kind>()
        let visited = HashSet<Expr>(HashIdentity.Reference)
        let pending = Stack<Expr>([ e ])
        while pending.Count > 0 do
            let node = pending.Pop()
            if visited.Add node then
                match node with
                | Var(n, k) -> if known.Add((n, k)) then seen.Add((n, k))
                | _ -> for c in List.rev (children node) do pending.Push c
        List.ofSeq seen

    /// The distinct subexpressions (structurally) of `roots`, children before parents, each with the positions of its
    /// operands in that order, and the positions of the roots. Two nodes are the same when their roots agree and
    /// their operands have the same positions, so each lookup is shallow whatever the depth.
    let internal distinct (roots: Expr list) : Expr[] * int list[] * int list =
        let index = Dictionary<Expr, int>()
        let nodes = List<Expr>()
        let operands = List<int list>()
        let number (root: Expr) =
            Expr.Fold(children, (fun node positions ->
                let key = withChildren node (positions |> List.map (fun i -> Const(float i)))
                match index.TryGetValue key with
                | true, i -> i
                | _ ->
                    let i = nodes.Count
                    nodes.Add node
                    operands.Add positions
                    index[key] <- i
                    i), root)
        let positions = roots |> List.map number
        nodes.ToArray(), operands.ToArray(), positions

    /// The number of distinct subexpressions (the size of the expression as a graph with shared nodes).
    let size (e: Expr) =
        let nodes, _, _ = distinct [ e ]
        nodes.Length
