/// The spectral gradient in closed form where the vector field is linear in θ (and the check of the general one):
/// for the diagonal linear field f(s, z) = θ(s) ⊙ z with θ(s) = α ψ(s) (α: [n, m], z: [batch, n]),
///   z(S) = z(0) ⊙ exp(α Ψ(S)),  Ψ_j(S) = ∫_0^S ψ_j,
/// so for any loss L(z(S)),  dL/dα_{p,j} = Σ_batch (∂L/∂z(S))_p · z(S)_p · Ψ_j(S).
/// Theorem 1 agrees: a(s) = ∂L/∂z(S) ⊙ z(S)/z(s) and ∂f/∂θ(s) = z(s), so δL/δθ(s) = Σ_batch ∂L/∂z(S) ⊙ z(S) is
/// constant in s, and its projection on ψ_j is that constant times Ψ_j(S) (Corollary 1).
module NeuralOde.Core.SpectralClosedForm

open TorchSharp

/// z(S) for the diagonal linear Galerkin field.
let diagonalLinearSolution (basis: Basis) (alpha: torch.Tensor) (z0: torch.Tensor) : torch.Tensor =
    use integrals = torch.tensor(basis.Integrals basis.Domain, dtype = alpha.dtype, device = alpha.device)
    use exponent = alpha.mv(integrals)
    use growth = exponent.exp()
    z0 * growth

/// dL/dα for the diagonal linear Galerkin field, given ∂L/∂z(S).
let diagonalLinearGradient (basis: Basis) (alpha: torch.Tensor) (z0: torch.Tensor) (terminalGradient: torch.Tensor) : torch.Tensor =
    use zS = diagonalLinearSolution basis alpha z0
    use product = terminalGradient * zS
    use weighted = product.sum(0L)
    use integrals = torch.tensor(basis.Integrals basis.Domain, dtype = alpha.dtype, device = alpha.device)
    use column = weighted.unsqueeze(1L)
    use row = integrals.unsqueeze(0L)
    column.mm(row)
