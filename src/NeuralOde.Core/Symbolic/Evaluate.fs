/// Evaluating expressions on TorchSharp tensors: the interpreter behind every symbolic result (derivatives included),
/// checked against autograd by the tests. Intermediates live in a dispose scope; only the result is returned.
module NeuralOde.Core.Symbolic.Evaluate

open System
open TorchSharp
open NeuralOde.Core.Symbolic

/// The dtype and device constants take: those of the bound tensors (float64 on the CPU when none is bound).
let internal dtypeAndDevice (environment: Map<string, torch.Tensor>) =
    match environment |> Seq.tryHead with
    | Some kv -> kv.Value.dtype, kv.Value.device
    | None -> torch.float64, torch.CPU

/// The value of a constant or a variable: the bound tensor (an alias), checked for its kind.
let internal leaf (environment: Map<string, torch.Tensor>) (dtype: torch.ScalarType) (device: torch.Device) (e: Expr) =
    match e with
    | Const c -> torch.tensor(c, dtype = dtype, device = device)
    | Var(name, kind) ->
        match Map.tryFind name environment with
        | None -> raise (ArgumentException($"The variable '{name}' is not bound in the environment.", "environment"))
        | Some t ->
            if kind = Scalar && t.Dimensions <> 0 then
                let shape = String.Join(", ", t.shape)
                raise (ArgumentException($"The scalar variable '{name}' is bound to a tensor of shape [{shape}]; give a 0-dim tensor.", "environment"))
            t.alias()
    | _ -> raise (ArgumentException("Not a constant or a variable.", "e"))

/// The root operation of `e` applied to its operands' values (in the order of Expr.children).
let internal operation (dtype: torch.ScalarType) (device: torch.Device) (e: Expr) (operands: torch.Tensor list) : torch.Tensor =
    match e, operands with
    | Add _, [ a; b ] -> NeuralOde.Core.Internal.TensorOps.plus a b   // not torch.add: its temporary alpha Scalar (TensorOps)
    | Sub _, [ a; b ] -> torch.sub(a, b)
    | Mul _, [ a; b ] -> torch.mul(a, b)
    | Div _, [ a; b ] -> torch.div(a, b)
    | Neg _, [ a ] -> a.neg()
    | Pow(_, p), [ a ] -> use exponent = torch.tensor(p, dtype = dtype, device = device) in torch.pow(a, exponent)
    | Apply(f, _), [ x ] ->
        match f with
        | Tanh -> x.tanh()
        | Sigmoid -> x.sigmoid()
        | Softplus -> torch.nn.functional.softplus(x)
        | Sin -> x.sin()
        | Cos -> x.cos()
        | Exp -> x.exp()
        | Log -> x.log()
    | MatMul _, [ a; b ] -> a.mm(b)
    | Transpose _, [ a ] -> a.t()
    | SumAll _, [ a ] -> a.sum()
    | OnesLike _, [ a ] -> torch.ones_like(a)
    | SumAxis(_, k), [ a ] ->
        if a.Dimensions < 2 then
            let shape = String.Join(", ", a.shape)
            raise (ArgumentException($"A sum over axis {k} needs an operand of rank 2 or more; got shape [{shape}]. Use the full sum for a vector.", "e"))
        a.sum(int64 (Shapes.sumAxis (int a.Dimensions) k))
    | MatrixExp _, [ m ] ->
        if m.Dimensions <> 2L || m.shape[0] <> m.shape[1] then
            let shape = String.Join(", ", m.shape)
            raise (ArgumentException($"The matrix exponential needs a square 2-D operand; got shape [{shape}].", "e"))
        m.matrix_exp()
    | ExpFrechet _, [ x; e ] ->
        // e^[[X, E], [0, X]] = [[e^X, L(X, E)], [0, e^X]] (Najfeld & Havel 1995; Higham, Functions of Matrices, §3.2).
        use top = torch.cat([| x; e |], 1L)
        use zero = torch.zeros_like(x)
        use bottom = torch.cat([| zero; x |], 1L)
        use block = torch.cat([| top; bottom |], 0L)
        use exponential = block.matrix_exp()
        let n = x.shape[0]
        exponential.narrow(0L, 0L, n).narrow(1L, n, n).contiguous()
    | ReduceLike _, [ a; like ] ->
        if a.shape = like.shape then a.alias()
        else
            // Broadcasting in reverse: sum the leading axes like lacks, then the axes where it has size 1.
            let lead = a.Dimensions - like.Dimensions
            let summed = if lead > 0L then a.sum([| 0L .. lead - 1L |]) else a.alias()
            let ones = [| for k in 0L .. like.Dimensions - 1L do if like.shape[int k] = 1L && summed.shape[int k] <> 1L then yield k |]
            if ones.Length > 0 then summed.sum(ones, keepdim = true) else summed
    | Spread(_, k, _), [ a; like ] -> a.unsqueeze(int64 k).expand_as(like).contiguous()
    | Concat(_, k), parts -> torch.cat(Array.ofList parts, int64 k)
    | Part(_, _, i, k), d :: parts ->
        let axisOf (p: torch.Tensor) = if k < 0 then int64 p.Dimensions + int64 k else int64 k
        let sizes = parts |> List.map (fun p -> p.shape[int (axisOf p)])
        let offset = sizes |> List.take i |> List.sum
        d.narrow(int64 k, offset, sizes[i])
    | Psi(b, j, _, d), [ s ] ->
        let depth = s.ToDouble()
        // valuesAt refuses depths outside the basis's domain (an extrapolation would be silent).
        let values = NeuralOde.Core.Basis.valuesAt b depth
        let value = match d with 0 -> values[j] | 1 -> (b.Derivatives depth)[j] | _ -> (b.Integrals depth)[j]
        torch.tensor(value, dtype = dtype, device = device)
    | _ -> raise (ArgumentException($"{operands.Length} operand(s) do not fit the expression's root.", "operands"))

/// The value of `e` with each variable bound in `environment` (by name). Constants take the dtype and device of the
/// bound tensors. Raises ArgumentException naming a variable that is not bound, or one bound to a tensor of the wrong
/// kind (a scalar variable needs a 0-dim tensor).
let evaluate (environment: Map<string, torch.Tensor>) (e: Expr) : torch.Tensor =
    if environment.IsEmpty && not (Expr.variables e).IsEmpty then
        raise (ArgumentException("The environment binds no variables.", "environment"))
    let dtype, device = dtypeAndDevice environment
    use scope = torch.NewDisposeScope()
    // Operands before their operation, from an explicit stack (no depth of nesting overflows the thread's stack).
    let value =
        Expr.Fold(Expr.children, (fun node operands ->
            match node with
            | Const _ | Var _ -> leaf environment dtype device node
            | _ -> operation dtype device node operands), e)
    value.MoveToOuterDisposeScope()
