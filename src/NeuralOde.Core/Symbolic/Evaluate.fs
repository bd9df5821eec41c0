/// Evaluating expressions on TorchSharp tensors: the interpreter behind every symbolic result (derivatives included),
/// checked against autograd by the tests. Intermediates live in a dispose scope; only the result is returned.
module NeuralOde.Core.Symbolic.Evaluate

open System
open TorchSharp
open NeuralOde.Core.Symbolic

/// The value of `e` with each variable bound in `environment` (by name). Constants take the dtype and device of the
/// bound tensors. Raises ArgumentException naming a variable that is not bound, or one bound to a tensor of the wrong
/// kind (a scalar variable needs a 0-dim tensor).
let evaluate (environment: Map<string, torch.Tensor>) (e: Expr) : torch.Tensor =
    if environment.IsEmpty && not (Expr.variables e).IsEmpty then
        raise (ArgumentException("The environment binds no variables.", "environment"))
    let like = environment |> Seq.tryHead |> Option.map (fun kv -> kv.Value)
    let dtype, device =
        match like with
        | Some t -> t.dtype, t.device
        | None -> torch.float64, torch.CPU
    use scope = torch.NewDisposeScope()
    let constant (c: float) = torch.tensor(c, dtype = dtype, device = device)
    let rec go (e: Expr) : torch.Tensor =
        match e with
        | Const c -> constant c
        | Var(name, kind) ->
            match Map.tryFind name environment with
            | None -> raise (ArgumentException($"The variable '{name}' is not bound in the environment.", "environment"))
            | Some t ->
                if kind = Scalar && t.Dimensions <> 0 then
                    let shape = String.Join(", ", t.shape)
                    raise (ArgumentException($"The scalar variable '{name}' is bound to a tensor of shape [{shape}]; give a 0-dim tensor.", "environment"))
                t.alias()
        | Add(a, b) -> torch.add(go a, go b)
        | Sub(a, b) -> torch.sub(go a, go b)
        | Mul(a, b) -> torch.mul(go a, go b)
        | Div(a, b) -> torch.div(go a, go b)
        | Neg a -> (go a).neg()
        | Pow(a, p) -> use exponent = constant p in torch.pow(go a, exponent)
        | Apply(f, a) ->
            let x = go a
            match f with
            | Tanh -> x.tanh()
            | Sigmoid -> x.sigmoid()
            | Softplus -> torch.nn.functional.softplus(x)
            | Sin -> x.sin()
            | Cos -> x.cos()
            | Exp -> x.exp()
            | Log -> x.log()
        | MatMul(a, b) -> (go a).mm(go b)
        | Transpose a -> (go a).t()
        | SumAll a -> (go a).sum()
        | OnesLike a -> torch.ones_like(go a)
        | Psi(b, j, s, d) ->
            let depth = (go s).ToDouble()
            // valuesAt refuses depths outside the basis's domain (an extrapolation would be silent).
            let values = NeuralOde.Core.Basis.valuesAt b depth
            constant (match d with
                      | 0 -> values[j]
                      | 1 -> (b.Derivatives depth)[j]
                      | _ -> (b.Integrals depth)[j])
    (go e).MoveToOuterDisposeScope()
