namespace NeuralOde.Core

/// How a multiple-shooting solve updates the boundary states B = (b_0 = z0, b_1, …, b_N) from one iteration to the
/// next (Massaroli et al., "Differentiable Multiple Shooting Layers", NeurIPS 2021, §3). Every variant sweeps the
/// segments in order from b_0 = z0, so after i sweeps the first i boundary states are those of the sequential solve:
/// each converges in at most N sweeps; the Newton variants converge quadratically, much sooner.
[<RequireQualifiedAccess>]
type ShootingVariant =
    /// Zeroth order (a parallel Picard sweep): b_{k+1} ← φ_k(b_k). Fixes one more segment per sweep; no Jacobians.
    | Zero
    /// Newton with the segment Jacobians ∂φ_k/∂b formed in full (one reverse pass per state element, all segments at
    /// once), then the block-bidiagonal system solved by the forward recursion
    /// b_{k+1} ← φ_k(b_k) + ∂φ_k/∂b (b'_k − b_k). Memory N·D² for D elements in a state.
    | Direct
    /// The same Newton recursion with each ∂φ_k/∂b (b'_k − b_k) an exact Jacobian–vector product through the fine
    /// solver (no Jacobian formed): N products per sweep, each a pass through the stacked graph of all segments, so a
    /// sweep costs about N stacked backward passes (Direct's D passes are cheaper when the state is small).
    | Forward
    /// torchdyn's MSBackward: the recursion with the reverse-mode product (∂φ_k/∂b)ᵀ (b'_k − b_k) in place of the
    /// Jacobian–vector product. Equal to Newton when the segment Jacobians are symmetric (a scalar state, or
    /// dz/dt = A z with A symmetric); otherwise a quasi-Newton sweep, converging in at most N sweeps like every
    /// variant, not quadratically.
    | Backward
