/// The trace of a field's Jacobian tr(∂f/∂z), derived symbolically for continuous normalizing flows (Chen et al.
/// 2018, Theorem 1): for a batched field whose row n depends on z's row n only (an MLP, data-controlled or
/// depth-variant), the Jacobian of one row is a sum of chains of factors — elementwise scalings (diagonal, e.g.
/// σ′(u) of an activation) and products with state-free matrices (the weights, and the place of a part in a
/// concatenation) — found by the chain rule on the expression. The trace of a chain is then taken in closed form
/// from its factors: with one nonlinear layer, tr(W_in diag(σ′(u)) W_out) = Σ_k σ′(u_k) (W_out W_in)_kk, which costs
/// about one forward pass, where autograd's exact trace costs d backward passes.
module NeuralOde.Core.Symbolic.JacobianTrace

open System
open TorchSharp
open NeuralOde.Core.Symbolic

/// One factor of a chain; the Jacobian of a row acts as z ↦ z F1 F2 … Fm (row vectors).
type Factor =
    /// Elementwise scaling by the expression (shaped like the row it scales, [N, k], or a scalar).
    | Diagonal of Expr
    /// The product with a state-free matrix [k, m] on the right.
    | Matrix of Expr
    /// The place of part `index` of `parts` in their concatenation along the features (a [k_i, K] selection).
    | Embed of parts: Expr list * index: int

/// A sum of chains; no chain is the zero map, one empty chain the identity.
type Jacobian = Factor list list

let private uses (state: string) (e: Expr) = Expr.variables e |> List.exists (fun (n, _) -> n = state)

/// The row Jacobian of `field` with respect to the state variable `state`, as chains of factors (simplified). Raises
/// NotSupportedException naming the construct when a row of the field depends on other rows of the state (a product
/// with the state on the right, a transpose, a sum over the batch), where a per-sample trace is not defined this way.
let derive (field: Expr) (state: string) : Jacobian =
    // The chain rule from the root down, from an explicit stack (no depth of nesting overflows the thread's stack):
    // each operand with the factors that follow it in its chains, operands left to right.
    let chains = System.Collections.Generic.List<Factor list>()
    let pending = System.Collections.Generic.Stack<Expr * Factor list>([ field, [] ])
    while pending.Count > 0 do
        let e, after = pending.Pop()
        if uses state e then
            let mixes (what: string) =
                raise (NotSupportedException($"The field's rows are not independent: {what} in {Render.text e}. The symbolic trace needs a field whose row n depends on the state's row n only; use Hutchinson's estimator or autograd's exact trace for this field."))
            let operands =
                match e with
                | Var _ -> chains.Add after; []
                | Add(a, b) -> [ a, after; b, after ]
                | Sub(a, b) -> [ a, after; b, Diagonal(Const -1.0) :: after ]
                | Neg a -> [ a, Diagonal(Const -1.0) :: after ]
                | Mul(a, b) -> [ a, Diagonal b :: after; b, Diagonal a :: after ]
                | Div(a, b) -> [ a, Diagonal(Div(Const 1.0, b)) :: after; b, Diagonal(Neg(Div(a, Pow(b, 2.0)))) :: after ]
                | Pow(a, p) -> [ a, Diagonal(Mul(Const p, Pow(a, p - 1.0))) :: after ]
                | Apply(f, a) -> [ a, Diagonal(Derivative.derivativeOf f a) :: after ]
                | MatMul(a, w) when not (uses state w) -> [ a, Matrix w :: after ]
                | MatMul _ -> mixes "a matrix product with the state in its right operand"
                | Concat(parts, axis) when axis = 1 || axis = -1 -> parts |> List.mapi (fun i p -> p, Embed(parts, i) :: after)
                | Concat _ -> mixes "a concatenation along the batch"
                | Transpose _ -> mixes "a transpose"
                | SumAll _ | SumAxis _ | Spread _ -> mixes "a sum across elements"
                | Part _ | OnesLike _ | Psi _ | Const _ | ReduceLike _ | ExpFrechet _ -> mixes "a construct of derivatives"
                | MatrixExp _ -> mixes "a matrix exponential of the state"
            for operand in List.rev operands do pending.Push operand
    let simplifyFactor f =
        match f with
        | Diagonal d -> Diagonal(Simplify.simplify d)
        | Matrix m -> Matrix(Simplify.simplify m)
        | Embed _ -> f
    chains |> Seq.map (List.map simplifyFactor) |> List.ofSeq

/// The expressions the chains' factors evaluate (the parts of a concatenation give its sizes).
let factorExpressions (j: Jacobian) : Expr list =
    j |> List.collect (List.collect (fun f ->
        match f with
        | Diagonal d -> [ d ]
        | Matrix m -> [ m ]
        | Embed(parts, _) -> parts))

/// The chains as text: "tr(z ↦ z F1 F2 …)" summed, with D(e) for a scaling and M(e) for a matrix.
let text (j: Jacobian) =
    let factor f =
        match f with
        | Diagonal d -> $"diag({Render.text d})"
        | Matrix m -> Render.text m
        | Embed(parts, i) -> $"embed({i} of {parts.Length})"
    match j with
    | [] -> "0"
    | chains ->
        chains
        |> List.map (fun chain -> if chain.IsEmpty then "tr(I)" else "tr(" + String.Join(" ", chain |> List.map factor) + ")")
        |> String.concat " + "

/// A factor with its values.
type private Value =
    | D of torch.Tensor
    | M of torch.Tensor list

/// The trace per sample [N] of the Jacobian `j` at a state of `rows` samples of `width` features, the factors'
/// values given by `valueOf` (an expression's value). Differentiable when the values are.
let evaluate (j: Jacobian) (valueOf: Expr -> torch.Tensor) (rows: int64) (width: int64) (dtype: torch.ScalarType) (device: torch.Device) : torch.Tensor =
    use scope = torch.NewDisposeScope()
    let selection (parts: Expr list) (index: int) =
        let sizes = parts |> List.map (fun p -> (valueOf p).shape[1])
        let offset = sizes |> List.take index |> List.sum
        let total = List.sum sizes
        let eye = torch.eye(total, dtype = dtype, device = device)
        eye.narrow(0L, offset, sizes[index])
    let product (ms: torch.Tensor list) = ms |> List.reduce (fun a b -> a.mm(b))
    let refuse (what: string) =
        raise (NotSupportedException($"The closed-form trace cannot follow the field's shapes: {what}. Use Hutchinson's estimator or autograd's exact trace for this field."))
    let ones (k: int64) = torch.ones([| 1L; k |], dtype = dtype, device = device)
    let chainTrace (chain: Factor list) : torch.Tensor =
        // The factors' values, walked with the row width they act on. An operand of width 1 broadcast against a
        // wider one (a term tanh(z w) [N, 1] added to z W [N, d]) is an implicit product with a row of ones: inserted
        // here, where the shapes are known.
        let items = Collections.Generic.List<Value>()
        let mutable current = width
        let matrix (a: torch.Tensor) =
            if a.shape[0] <> current then refuse $"a product maps width {a.shape[0]} where the chain has width {current}"
            items.Add(M [ a ])
            current <- a.shape[1]
        for f in chain do
            match f with
            | Diagonal d ->
                let v = valueOf d
                let kv = if v.Dimensions = 0L then current else v.shape[int v.Dimensions - 1]
                if kv <> current then
                    if current = 1L then matrix (ones kv)
                    elif kv <> 1L then refuse $"a scaling of width {kv} meets a chain of width {current}"
                items.Add(D v)
            | Matrix m -> matrix (valueOf m)
            | Embed(parts, i) -> matrix (selection parts i)
        if current <> width then
            if current = 1L then matrix (ones width)
            else refuse $"the chain ends at width {current}, not the state's {width}"
        // Consecutive matrices and consecutive scalings grouped.
        let grouped =
            items |> Seq.fold (fun (acc: Value list) item ->
                match item, acc with
                | D w, D v :: rest -> D(v * w) :: rest
                | M ws, M ms :: rest -> M(ms @ ws) :: rest
                | _ -> item :: acc) []
            |> List.rev
        // The trace is cyclic: the matrices at the end join those at the start, and a scaling at the end joins the
        // one at the start, so that the chain alternates D A D A … ending with a matrix.
        let cyclic =
            match grouped with
            | M first :: rest ->
                match List.rev rest with
                | M last :: middle -> List.rev middle @ [ M(last @ first) ]
                | _ -> rest @ [ M first ]
            | D first :: rest ->
                match List.rev rest with
                | D last :: middle -> D(first * last) :: List.rev middle
                | _ -> grouped
            | [] -> []
        let full (v: torch.Tensor) (k: int64) = v.expand([| rows; k |])
        match cyclic with
        | [] -> (use w = Scalar.op_Implicit (float width) in torch.full([| rows |], w, dtype = dtype, device = device))
        | [ M ms ] -> (product ms).trace().expand([| rows |])
        | [ D v ] -> (full v width).sum(1L)
        | [ D v; M ms ] ->
            let diagonal =
                match ms with
                | [ p; q ] -> (p * q.t()).sum(1L)   // diag(P Q) without the product
                | _ -> (product ms).diagonal()
            (full v diagonal.shape[0] * diagonal).sum(1L)
        | [ D v1; M a; D v2; M b ] ->
            // tr(D1 A D2 B) = Σ_kl v1_k A_kl v2_l B_lk = Σ_l (v1 (A ⊙ Bᵀ))_l v2_l: one product, as a layer costs.
            let a, b = product a, product b
            let u = (full v1 a.shape[0]).mm(a * b.t())
            (u * full v2 a.shape[1]).sum(1L)
        | items ->
            // Three or more scalings: the row Jacobian as a batch of matrices [N, k, k], built factor by factor.
            let pairs = items |> List.chunkBySize 2
            let mutable x: torch.Tensor = null
            for pair in pairs do
                match pair with
                | [ D v; M ms ] ->
                    let a = product ms
                    let scaled = full v a.shape[0]
                    x <- if isNull x then scaled.unsqueeze(2L) * a else (x * scaled.unsqueeze(1L)).matmul(a)
                | _ -> raise (InvalidOperationException("A chain that does not alternate scalings and matrices."))
            x.diagonal(0L, 1L, 2L).sum(1L)
    let total =
        match j with
        | [] -> torch.zeros([| rows |], dtype = dtype, device = device)
        | chains -> chains |> List.map chainTrace |> List.reduce (fun a b -> a + b)
    total.MoveToOuterDisposeScope()

/// The trace per sample [N] of the Jacobian `j` of a field over the state variable `state`, every variable bound in
/// `environment` (the state [N, d] among them): the factors compiled together, evaluated once each.
let at (j: Jacobian) (state: string) (environment: Map<string, torch.Tensor>) : torch.Tensor =
    let z =
        match Map.tryFind state environment with
        | Some z when not (isNull z) && z.dim() = 2L -> z
        | _ -> raise (ArgumentException($"The state '{state}' must be bound to a batch of vectors [N, d].", "environment"))
    use scope = torch.NewDisposeScope()
    let factors = factorExpressions j |> List.distinct
    let results = if factors.IsEmpty then [||] else (Compile.compileAll factors).InvokeAll environment
    let byExpression = dict (List.zip factors (List.ofArray results))
    (evaluate j (fun e -> byExpression[e]) z.shape[0] z.shape[1] z.dtype z.device).MoveToOuterDisposeScope()
