/// Closed forms, derived where they exist. For a field linear in the state with a depth-varying coefficient that
/// commutes — dz/ds = θ(s) ⊙ z, or θ(s) z A with θ scalar and A fixed, θ(s) = Σ_j c_j ψ_j(s) with coefficients c_j
/// free of z and s — the solution is z(S) = z(0) ⊙ exp(Σ_j c_j Ψ_j(S)), or z(0) e^{(Σ_j c_j Ψ_j(S)) A}, with
/// Ψ_j(S) = ∫_0^S ψ_j (the basis's closed-form integrals). As an expression, its
/// VJP gives the spectral gradient dL/dc_j in the basis integrals (Corollary 1 in closed form), which
/// SpectralClosedForm.fs evaluates for the diagonal case.
module NeuralOde.Core.Symbolic.ClosedForm

open NeuralOde.Core.Symbolic

let private uses (name: string) (e: Expr) = Expr.variables e |> List.exists (fun (n, _) -> n = name)

/// θ as Σ_k c_k ψ_{j_k}(s): the (coefficient, basis, index) terms, or None when θ is not of that form. (The sum's
/// terms are collected from an explicit stack: no depth of nesting overflows the thread's stack.)
let private terms (depth: string) (state: string) (theta: Expr) =
    let isDepth e = match e with Var(n, _) -> n = depth | _ -> false
    let found = System.Collections.Generic.List<Expr * NeuralOde.Core.Basis * int>()
    let pending = System.Collections.Generic.Stack<Expr>([ theta ])
    let mutable linear = true
    while linear && pending.Count > 0 do
        match pending.Pop() with
        | Add(a, b) -> pending.Push b; pending.Push a
        | Mul(c, Psi(basis, j, s, 0)) | Mul(Psi(basis, j, s, 0), c) when isDepth s && not (uses depth c) && not (uses state c) ->
            found.Add((c, basis, j))
        | Psi(basis, j, s, 0) when isDepth s -> found.Add((Const 1.0, basis, j))
        | _ -> linear <- false
    if linear then Some(List.ofSeq found) else None

/// z(S) of a linear field with a commuting depth-varying coefficient, from z(0) = `initial` over [0, `horizon`]:
///   dz/ds = θ(s) ⊙ z (diagonal; θ any shape that broadcasts)  →  z(S) = z(0) ⊙ exp(Σ_j c_j Ψ_j(S)),
///   dz/ds = θ(s) (z A) (a scalar θ times a fixed matrix A)     →  z(S) = z(0) e^{(Σ_j c_j Ψ_j(S)) A},
/// when θ is linear in basis functions of the depth variable `depth` with coefficients c_j free of the state and the
/// depth, and A is free of both; None otherwise. The matrix case needs scalar coefficients (then θ(s)A commutes with
/// itself at every depth, which is what makes the exponential the solution).
let linearSolution (field: Expr) (state: string) (depth: string) (initial: Expr) (horizon: Expr) : Expr option =
    let isState e = match e with Var(n, _) -> n = state | _ -> false
    let free e = not (uses state e) && not (uses depth e)
    let exponentOf theta =
        terms depth state theta
        |> Option.map (fun ts -> ts |> List.map (fun (c, basis, j) -> Mul(c, Psi(basis, j, horizon, -1))) |> List.reduce (fun a b -> Add(a, b)))
    let solution =
        match field with
        | Mul(theta, MatMul(z, a)) | Mul(MatMul(z, a), theta) | MatMul(Mul(theta, z), a) | MatMul(Mul(z, theta), a)
            when isState z && free a && not (uses state theta) ->
            exponentOf theta |> Option.bind (fun x -> if Expr.isScalar x then Some(MatMul(initial, MatrixExp(Mul(x, a)))) else None)
        | Mul(theta, z) | Mul(z, theta) when isState z && not (uses state theta) ->
            exponentOf theta |> Option.map (fun x -> Mul(initial, Apply(Exp, x)))
        | _ -> None
    solution |> Option.map Simplify.simplify
