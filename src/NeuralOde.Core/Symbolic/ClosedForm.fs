/// Closed forms, derived where they exist. For a field linear in the state with a depth-varying coefficient that
/// commutes — dz/ds = θ(s) ⊙ z, θ(s) = Σ_j c_j ψ_j(s) with coefficients c_j free of z and s — the solution is
/// z(S) = z(0) ⊙ exp(Σ_j c_j Ψ_j(S)), Ψ_j(S) = ∫_0^S ψ_j (the basis's closed-form integrals). As an expression, its
/// VJP gives the spectral gradient dL/dc_j in the basis integrals (Corollary 1 in closed form), which
/// SpectralClosedForm.fs evaluates for the diagonal case.
module NeuralOde.Core.Symbolic.ClosedForm

open NeuralOde.Core.Symbolic

let private uses (name: string) (e: Expr) = Expr.variables e |> List.exists (fun (n, _) -> n = name)

/// θ as Σ_k c_k ψ_{j_k}(s): the (coefficient, basis, index) terms, or None when θ is not of that form.
let rec private terms (depth: string) (state: string) (theta: Expr) =
    let isDepth e = match e with Var(n, _) -> n = depth | _ -> false
    match theta with
    | Add(a, b) -> Option.map2 (@) (terms depth state a) (terms depth state b)
    | Mul(c, Psi(basis, j, s, 0)) | Mul(Psi(basis, j, s, 0), c) when isDepth s && not (uses depth c) && not (uses state c) ->
        Some [ c, basis, j ]
    | Psi(basis, j, s, 0) when isDepth s -> Some [ Const 1.0, basis, j ]
    | _ -> None

/// z(S) of dz/ds = θ(s) ⊙ z from z(0) = `initial` over [0, `horizon`], when `field` has that form (θ linear in
/// basis functions of the depth variable `depth`, free of the state); None otherwise.
let linearSolution (field: Expr) (state: string) (depth: string) (initial: Expr) (horizon: Expr) : Expr option =
    let isState e = match e with Var(n, _) -> n = state | _ -> false
    let theta =
        match field with
        | Mul(theta, z) when isState z && not (uses state theta) -> Some theta
        | Mul(z, theta) when isState z && not (uses state theta) -> Some theta
        | _ -> None
    theta
    |> Option.bind (terms depth state)
    |> Option.map (fun ts ->
        let exponent = ts |> List.map (fun (c, basis, j) -> Mul(c, Psi(basis, j, horizon, -1))) |> List.reduce (fun a b -> Add(a, b))
        Simplify.simplify (Mul(initial, Apply(Exp, exponent))))
