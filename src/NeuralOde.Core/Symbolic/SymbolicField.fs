/// A vector field written as a symbolic expression, as a module: f(s, z; θ) over a state variable, parameters
/// (registered as the module's parameters, so optimisers and every sensitivity see them), an optional depth variable
/// and an optional data variable (the data-controlled field dz/ds = f(s, x, z)). Its derivatives are derived once and
/// compiled (Compile.fs): the forward, the vector–Jacobian products aᵀ∂f/∂z and aᵀ∂f/∂θ that the adjoint
/// sensitivities use instead of autograd (`problem`), and the exact trace of ∂f/∂z for continuous normalizing flows
/// (JacobianTrace.fs) — each evaluated with its common subexpressions shared.
namespace NeuralOde.Core.Symbolic

open System
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core

/// The holder of a symbolic field's data x: the block or flow hands it x before each evaluation.
type internal SymbolicData() =
    inherit Module("data")
    let mutable data: torch.Tensor = null
    member _.Value = data
    override _.RegisterComponents() = ()
    interface IDataControlled with
        member _.SetData(x) = data <- x

/// f(s, z; θ) from `field` over the state variable `state`; `parameters` give each parameter variable's initial
/// value (copied into a parameter of the module), `depth` names the depth's scalar variable and `data` the data's
/// variable, when the field uses them. Before its first evaluation for a state shape the parameters' shapes are
/// checked against it (Shapes.infer): a parameter that does not fit raises ArgumentException ("parameters") naming
/// the operation, the state's shape and every parameter's shape.
type SymbolicField(name: string, field: Expr, state: string, parameters: (string * torch.Tensor) list,
                   depth: string option, data: string option) as this =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    let variables = Expr.variables field
    let used n = variables |> List.exists (fun (m, _) -> m = n)
    do
        if not (used state) then raise (ArgumentException($"The field does not use the state variable '{state}'.", "state"))
        for n, value in parameters do
            if isNull value then raise (ArgumentNullException("parameters", $"The parameter '{n}' has no value."))
            if not (used n) then raise (ArgumentException($"The field does not use the parameter '{n}'.", "parameters"))
        for v, _ in variables do
            let bound = v = state || parameters |> List.exists (fun (n, _) -> n = v) || depth = Some v || data = Some v
            if not bound then
                raise (ArgumentException($"The field's variable '{v}' is neither the state, a parameter, the depth nor the data: give it a value as a parameter.", "field"))
    let names = parameters |> List.map fst
    let values =
        parameters |> List.map (fun (n, v) ->
            let p = new Modules.Parameter(v.detach().clone(), true)
            this.register_parameter(n, p)
            p)
    let slot = new SymbolicData()
    do if data.IsSome then this.register_module("data", slot)
    let mutable currentDepth = 0.0
    // The adjoint's variable: a name the field does not use.
    let adjoint = Seq.initInfinite (fun i -> if i = 0 then "a" else $"a{i}") |> Seq.find (fun n -> not (used n))
    let derivatives = Derivative.vjp field (Var(adjoint, Tensor))
    let productOf (n: string) = match Map.tryFind n derivatives with Some e -> e | None -> Const 0.0
    // The field and its products together: what they share (tanh(z W), say) is computed once per evaluation.
    let valueAndProducts = Compile.compileAll (field :: productOf state :: (names |> List.map productOf))
    let forwardCode = Compile.compile field
    let mutable traced: (JacobianTrace.Jacobian * Compile.Compiled * Expr list) option = None
    let mutable traceEvaluations = 0
    // The state and data shapes whose fit with the parameters has been checked (checkShapes).
    let mutable checkedShapes = ""
    /// Before the first evaluation for a state (and data) shape: the field's shape inferred from the bound shapes
    /// (Shapes.infer) must exist and be the state's, or the parameters' shapes are named.
    let checkShapes (bound: Map<string, torch.Tensor>) (z: torch.Tensor) =
        let key = String.Join(";", data |> Option.toList |> List.map (fun n -> Shapes.text bound[n].shape) |> List.append [ Shapes.text z.shape ])
        if key <> checkedShapes then
            let shapes = bound |> Map.map (fun _ t -> t.shape)
            let given = String.Join(", ", names |> List.map (fun n -> $"'{n}' {Shapes.text shapes[n]}"))
            let wrong (why: string) =
                ArgumentException($"The symbolic field's parameters do not fit a state '{state}' of shape {Shapes.text z.shape}: {why} Its parameters have shapes {given}; give each the shape the expression needs.", "parameters")
            let value =
                try Shapes.infer shapes field
                with :? ArgumentException as e when e.ParamName = "e" -> raise (wrong e.Message)
            if value <> z.shape then
                raise (wrong $"the field's value would have shape {Shapes.text value}, not the state's.")
            checkedShapes <- key
    let environment (s: float) (z: torch.Tensor) (x: torch.Tensor) (extra: (string * torch.Tensor) list) =
        let bound = List.zip names (values |> List.map (fun p -> p :> torch.Tensor)) @ [ state, z ] @ extra
        let withDepth =
            match depth with
            | Some n -> (n, torch.tensor(s, dtype = z.dtype, device = z.device)) :: bound
            | None -> bound
        let withData =
            match data with
            | Some n ->
                if isNull x then raise (ArgumentException($"The field reads the data variable '{n}' but no data was given: solve it through a block or flow, which passes its input, or give the data.", "data"))
                (n, x) :: withDepth
            | None -> withDepth
        let bound = Map.ofList withData
        checkShapes bound z
        bound

    /// How many times a flow has taken the closed-form trace (tests check the flow uses it).
    member internal _.TraceEvaluations = traceEvaluations
    /// The field's expression.
    member _.Expression = field
    /// The state's variable name.
    member _.State = state
    /// The parameters' variable names, in the order of `Parameters`.
    member _.ParameterNames = names
    /// The module's parameters, one per parameter variable.
    member _.Parameters : torch.Tensor[] = values |> List.map (fun p -> p :> torch.Tensor) |> Array.ofList
    /// The paper's formulas for this field (the adjoint system, Theorem 1's integrands).
    member _.Derivation = Formulas.derive field state names None
    /// Components are registered by name in the constructor only (why: Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()

    /// f(s, z) at depth s with data x (null when the field reads none).
    member _.Evaluate(s: float, z: torch.Tensor, x: torch.Tensor) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        (forwardCode.Invoke(environment s z x [])).MoveToOuterDisposeScope()

    /// aᵀ∂f/∂z and aᵀ∂f/∂θ for each parameter (in the order of `Parameters`), from the compiled symbolic derivatives,
    /// without an autograd graph.
    /// (The products share nearly all their work with f, so they are evaluated with it; f is dropped.)
    member m.VectorJacobianProduct(s: float, z: torch.Tensor, a: torch.Tensor, x: torch.Tensor) : torch.Tensor * torch.Tensor[] =
        let f, gz, gTheta = m.ValueAndVectorJacobianProduct(s, z, a, x)
        f.Dispose()
        gz, gTheta

    /// f(s, z) together with aᵀ∂f/∂z and aᵀ∂f/∂θ, their common subexpressions computed once, without an autograd graph.
    member _.ValueAndVectorJacobianProduct(s: float, z: torch.Tensor, a: torch.Tensor, x: torch.Tensor) : torch.Tensor * torch.Tensor * torch.Tensor[] =
        use scope = torch.NewDisposeScope()
        use _ = torch.no_grad()
        let results = valueAndProducts.InvokeAll(environment s z x [ adjoint, a ])
        // A product that is identically zero (the parameter does not reach f) is the constant 0: zeros of its shape.
        let shaped (r: torch.Tensor) (like: torch.Tensor) = if r.shape = like.shape then r else torch.zeros_like(like) + r
        let f = results[0]
        let gz = shaped results[1] z
        let gTheta = Array.init names.Length (fun i -> shaped results[i + 2] values[i])
        f.MoveToOuterDisposeScope(), gz.MoveToOuterDisposeScope(), gTheta |> Array.map (fun g -> g.MoveToOuterDisposeScope())

    /// The Jacobian ∂f/∂z as chains of factors (derived on first use), for the exact trace.
    member _.Jacobian =
        match traced with
        | Some(j, _, _) -> j
        | None ->
            let j = JacobianTrace.derive field state
            let factors = JacobianTrace.factorExpressions j |> List.distinct
            traced <- Some(j, Compile.compileAll (field :: factors), factors)
            j

    /// The problem dz/ds = f(s, z) from x0 over `times` with this field's parameters and compiled vector–Jacobian
    /// products (the adjoint sensitivities then take no autograd graph of f), data x bound (null for none).
    member m.Problem(x0: torch.Tensor, times: float[], x: torch.Tensor) : OdeProblem =
        if not (isNull x) && x.requires_grad then
            raise (ArgumentException("The data requires grad, but the compiled products give gradients for the state and the parameters only: detach the data, or solve the module with autograd's products (ModuleField / a block).", "data"))
        let f: VectorField = fun s z -> m.Evaluate(s, z, x)
        let vjp: VectorJacobianProduct =
            { Parameters = m.Parameters
              Apply = fun s z a -> m.VectorJacobianProduct(s, z, a, x)
              WithValue = Some(fun s z a -> m.ValueAndVectorJacobianProduct(s, z, a, x)) }
        OdeProblem.create f x0 times |> OdeProblem.withParameters m.Parameters |> OdeProblem.withVectorJacobianProduct vjp

    override _.forward(z: torch.Tensor) : torch.Tensor = this.Evaluate(currentDepth, z, slot.Value)

    interface IDepthAware with
        member _.SetDepth(s) = currentDepth <- s

    interface IExactTrace with
        member m.ValueAndTrace(s, z, x) =
            traceEvaluations <- traceEvaluations + 1
            let j = m.Jacobian
            let _, compiled, factors = traced.Value
            use scope = torch.NewDisposeScope()
            if z.dim() <> 2L then
                raise (ArgumentException($"The exact trace needs a batch of vectors [N, d]; got shape {Internal.TensorOps.shapeText z}.", "state"))
            let results = compiled.InvokeAll(environment s z x [])
            let byExpression = dict (List.zip factors (List.ofArray results[1..]))
            let trace = JacobianTrace.evaluate j (fun e -> byExpression[e]) z.shape[0] z.shape[1] z.dtype z.device
            results[0].MoveToOuterDisposeScope(), trace.MoveToOuterDisposeScope()

/// Building symbolic fields.
module SymbolicField =
    /// A symbolic field named "symbolic_field" over `state` with `parameters` (name, initial value) and the optional
    /// depth and data variables.
    let create (field: Expr) (state: string) (parameters: (string * torch.Tensor) list) (depth: string option) (data: string option) =
        new SymbolicField("symbolic_field", field, state, parameters, depth, data)
