/// The paper's formulas for a user's field, derived symbolically: for dz/ds = f(s, z; θ) with a running loss
/// l(s, z), the adjoint a(s) = ∂L/∂z(s) follows ȧ = −aᵀ ∂f/∂z − ∂l/∂z (Proposition 1), and the gradient of a
/// parameter θ is the integral of Theorem 1's δL/δθ(s) = aᵀ ∂f/∂θ(s) (for constant θ, dL/dθ = ∫ aᵀ ∂f/∂θ ds; for a
/// Galerkin θ(s) = Σ_j α_j ψ_j(s), Corollary 1's dL/dα_j = ∫ aᵀ ∂f/∂θ(s) ψ_j(s) ds). The expressions are
/// simplified and can be evaluated on tensors (Evaluate) or rendered (Render).
module NeuralOde.Core.Symbolic.Formulas

open NeuralOde.Core.Symbolic

/// The formulas of one field.
type Derivation =
    { /// f(s, z; θ).
      Field: Expr
      /// The running loss l(s, z), if any.
      RunningLoss: Expr option
      /// The state's variable name (z).
      State: string
      /// The adjoint's variable name (a), shaped like the state.
      Adjoint: string
      /// da/ds = −aᵀ ∂f/∂z − ∂l/∂z, shaped like the state.
      AdjointDerivative: Expr
      /// For each parameter θ: Theorem 1's δL/δθ(s) = aᵀ ∂f/∂θ(s), shaped like θ.
      ParameterIntegrands: Map<string, Expr> }

/// Derives the adjoint system and the parameter integrands of `field` with respect to the state variable `state`
/// and the variables named in `parameters`, with an optional running loss. Raises ArgumentException when the field
/// does not use the state, or a parameter is not a variable of the field.
let derive (field: Expr) (state: string) (parameters: string list) (runningLoss: Expr option) : Derivation =
    let used = Expr.variables field |> List.map fst
    if not (List.contains state used) then
        raise (System.ArgumentException($"The field does not use the state variable '{state}'.", "state"))
    for p in parameters do
        if not (List.contains p used) then
            raise (System.ArgumentException($"The field does not use the parameter '{p}'.", "parameters"))
    // The adjoint's name: a, unless the field or the loss already uses it (a parameter named a), then λ, λ1, ….
    let taken = used @ (runningLoss |> Option.map (Expr.variables >> List.map fst) |> Option.defaultValue [])
    let adjointName = Seq.append [ "a"; "λ" ] (Seq.initInfinite (fun i -> $"λ{i + 1}")) |> Seq.find (fun n -> not (List.contains n taken))
    let kind = Expr.variables field |> List.find (fun (n, _) -> n = state) |> snd
    let a = Var(adjointName, kind)
    let throughField = Derivative.vjp field a
    let throughLoss =
        match runningLoss with
        | Some l -> Derivative.vjp l (Const 1.0)
        | None -> Map.empty
    let dz = defaultArg (Map.tryFind state throughField) (Const 0.0)
    let adjointDerivative =
        match Map.tryFind state throughLoss with
        | Some dl -> Simplify.simplify (Neg(Add(dz, dl)))
        | None -> Simplify.simplify (Neg dz)
    { Field = field
      RunningLoss = runningLoss
      State = state
      Adjoint = adjointName
      AdjointDerivative = adjointDerivative
      ParameterIntegrands = parameters |> List.map (fun p -> p, throughField[p]) |> Map.ofList }

/// The derivation as LaTeX lines: the field, the adjoint system, and each parameter's gradient — with Corollary 1's
/// projection dL/dα_j = ∫ (aᵀ∂f/∂θ) ψ_j ds for the parameters named in `galerkin`, Corollary 2's per-interval integral
/// dL/dθ_i = ∫_{s_i}^{s_{i+1}} aᵀ∂f/∂θ_i ds for those named in `stacked` (θ piecewise constant), and Theorem 1's
/// integral over the span for the others.
let latexFor (d: Derivation) (galerkin: string list) (stacked: string list) =
    // The state as the field writes it (its LaTeX special characters escaped).
    let z, a = Render.latex (Var(d.State, Tensor)), d.Adjoint
    [ yield $"\\dot{{{z}}} = {Render.latex d.Field}"
      match d.RunningLoss with
      | Some l -> yield $"\\ell(s, {z}) = {Render.latex l}"
      | None -> ()
      yield $"\\dot{{{Render.latex (Var(a, Tensor))}}} = {Render.latex d.AdjointDerivative}"
      for KeyValue(p, g) in d.ParameterIntegrands do
          let name = Render.latex (Var(p, Tensor))
          if List.contains p galerkin then
              yield $"\\frac{{dL}}{{d\\alpha_j}} = \\int_0^S \\left({Render.latex g}\\right) \\psi_j(s)\\, ds \\quad ({name}(s) = \\textstyle\\sum_j \\alpha_j \\psi_j(s))"
          elif List.contains p stacked then
              yield $"\\frac{{dL}}{{d{name}_i}} = \\int_{{s_i}}^{{s_{{i+1}}}} {Render.latex g}\\, ds \\quad ({name}(s) = {name}_i \\text{{ on }} [s_i, s_{{i+1}}))"
          else
              yield $"\\frac{{\\delta L}}{{\\delta {name}(s)}} = {Render.latex g}, \\qquad \\frac{{dL}}{{d{name}}} = \\int_0^S {Render.latex g}\\, ds" ]

/// The derivation as LaTeX lines, with Corollary 1's projection for the parameters named in `galerkin`.
let latex (d: Derivation) (galerkin: string list) = latexFor d galerkin []

/// The derivation as plain-text lines.
let text (d: Derivation) =
    [ yield $"d{d.State}/ds = {Render.text d.Field}"
      match d.RunningLoss with
      | Some l -> yield $"l(s, {d.State}) = {Render.text l}"
      | None -> ()
      yield $"d{d.Adjoint}/ds = {Render.text d.AdjointDerivative}"
      for KeyValue(p, g) in d.ParameterIntegrands do
          yield $"dL/d{p} = integral over s of {Render.text g}" ]
