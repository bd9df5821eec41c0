/// The spectral gradient in closed form where the vector field is linear in the state with a commuting θ(s): for the
/// diagonal linear field f(s, z) = θ(s) ⊙ z with θ(s) = Σ_j α_j ψ_j(s) (α: [n, m], column α_j for ψ_j; z: [batch, n]),
/// the symbolic layer derives z(S) = z(0) ⊙ exp(Σ_j α_j Ψ_j(S)), Ψ_j(S) = ∫_0^S ψ_j (ClosedForm.linearSolution), and
/// its vector–Jacobian product gives dL/dα_j for any loss L(z(S)) — Corollary 1 in the basis integrals:
/// dL/dα_{p,j} = Σ_batch (∂L/∂z(S))_p · z(S)_p · Ψ_j(S). Theorem 1 agrees: a(s) = ∂L/∂z(S) ⊙ z(S)/z(s) and
/// ∂f/∂θ(s) = z(s), so δL/δθ(s) is constant in s and its projection on ψ_j is that constant times Ψ_j(S). Nothing here
/// is written by hand but the field: the solution and the gradient are derived and evaluated.
module NeuralOde.Core.SpectralClosedForm

open TorchSharp
open NeuralOde.Core.Symbolic

let private coefficient (j: int) = $"alpha{j}"

/// z(S) and its symbolic VJP with respect to each α_j, for a basis: derived from f = θ(s) ⊙ z.
let private derive (basis: Basis) =
    let s, z = Expr.scalar "s", Expr.tensor "z"
    let theta = Expr.galerkin basis [ for j in 0 .. basis.Terms - 1 -> Expr.tensor (coefficient j) ] s
    let field = Mul(theta, z)
    match ClosedForm.linearSolution field "z" "s" (Expr.tensor "z0") (Const basis.Domain) with
    | Some solution ->
        let gradients = Derivative.vjp solution (Expr.tensor "g")
        solution, [ for j in 0 .. basis.Terms - 1 -> gradients[coefficient j] ]
    | None -> invalidOp "θ(s) ⊙ z is linear in z with a commuting θ: its closed form exists."

let private environment (basis: Basis) (alpha: torch.Tensor) (z0: torch.Tensor) (extra: (string * torch.Tensor) list) =
    if isNull alpha then raise (System.ArgumentNullException("alpha"))
    if isNull z0 then raise (System.ArgumentNullException("z0"))
    if alpha.dim() <> 2L || alpha.shape[1] <> int64 basis.Terms then
        raise (System.ArgumentException($"alpha must be [n, {basis.Terms}] (one column per function of {basis}); got shape {Internal.TensorOps.shapeText alpha}.", "alpha"))
    if z0.dim() <> 2L || z0.shape[1] <> alpha.shape[0] then
        raise (System.ArgumentException($"z0 must be [batch, {alpha.shape[0]}] (the rows of alpha); got shape {Internal.TensorOps.shapeText z0}.", "z0"))
    Map([ for j in 0 .. basis.Terms - 1 -> coefficient j, alpha.select(1L, int64 j) ] @ [ "z0", z0 ] @ extra)

/// z(S) for the diagonal linear Galerkin field (differentiable in α and z0 when they require grad).
let diagonalLinearSolution (basis: Basis) (alpha: torch.Tensor) (z0: torch.Tensor) : torch.Tensor =
    let solution, _ = derive basis
    use scope = torch.NewDisposeScope()
    (Evaluate.evaluate (environment basis alpha z0 []) solution).MoveToOuterDisposeScope()

/// dL/dα [n, m] for the diagonal linear Galerkin field, given ∂L/∂z(S) [batch, n].
let diagonalLinearGradient (basis: Basis) (alpha: torch.Tensor) (z0: torch.Tensor) (terminalGradient: torch.Tensor) : torch.Tensor =
    if isNull terminalGradient then raise (System.ArgumentNullException("terminalGradient"))
    if terminalGradient.shape <> z0.shape then
        raise (System.ArgumentException($"terminalGradient must be shaped like z0 {Internal.TensorOps.shapeText z0}; got {Internal.TensorOps.shapeText terminalGradient}.", "terminalGradient"))
    let _, gradients = derive basis
    let compiled = Compile.compileAll gradients
    // The column views of α and the columns themselves are freed with this scope; only the stacked result leaves.
    use scope = torch.NewDisposeScope()
    let columns = compiled.InvokeAll(environment basis alpha z0 [ "g", terminalGradient ])
    torch.stack(columns, 1L).MoveToOuterDisposeScope()
