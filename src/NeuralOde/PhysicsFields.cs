using System;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// A Hamiltonian neural network's vector field (Greydanus, Dzamba &amp; Yosinski 2019): a learned scalar H(q, p) and, on
/// the state x = [q, p] of shape [N, 2n], the symplectic gradient (∂H/∂p, −∂H/∂q), taken by autograd inside the field.
/// H is conserved by the field's exact flow whatever the network learned, so a trained field keeps the energy over
/// long horizons where a plain Neural ODE drifts. Use it with <see cref="Ode"/>.Solve(module, …) or as a
/// <see cref="NeuralOdeBlock"/>'s field; it works under every sensitivity (the adjoint differentiates the field's own
/// gradient: a double backward).
/// </summary>
public sealed class HamiltonianField : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.HamiltonianField _field;

    /// <summary>Creates the field of <paramref name="hamiltonian"/>.</summary>
    /// <param name="coordinates">The number of positions n (the state has 2n features: q then p).</param>
    /// <param name="hamiltonian">H: maps states [N, 2n] to [N] or [N, 1], each sample on its own (no batch statistics).
    /// Smooth activations (tanh, softplus) give a smooth field.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="coordinates"/> is below 1.</exception>
    public HamiltonianField(int coordinates, Module<torch.Tensor, torch.Tensor> hamiltonian) : base("hamiltonian_field")
    {
        ArgumentNullException.ThrowIfNull(hamiltonian);
        _field = new Core.HamiltonianField(coordinates, hamiltonian);
        register_module("field", _field);
    }

    /// <summary>The number of positions n.</summary>
    public int Coordinates => _field.Coordinates;

    /// <summary>The learned scalar H(q, p).</summary>
    public Module<torch.Tensor, torch.Tensor> Hamiltonian => _field.Hamiltonian;

    /// <summary>H(x) per sample, shape [N], for states x = [q, p] of shape [N, 2n]; differentiable when grad is enabled.</summary>
    /// <exception cref="ArgumentException">x is not [N, 2n] floating point, or H does not return one number per sample.</exception>
    public torch.Tensor Energy(torch.Tensor x) => _field.Energy(x);

    /// <summary>(∂H/∂p, −∂H/∂q) at x = [q, p], shape [N, 2n].</summary>
    /// <exception cref="ArgumentException">x is not [N, 2n] floating point, or H does not return one number per sample.</exception>
    public override torch.Tensor forward(torch.Tensor x) => _field.forward(x);
}

/// <summary>
/// A Lagrangian neural network's vector field (Cranmer et al. 2020): a learned scalar L(q, q̇) and, on the state
/// x = [q, q̇] of shape [N, 2n], (q̇, q̈) with the Euler–Lagrange accelerations
/// q̈ = (∇_q̇∇_q̇ᵀL)⁻¹ [∇_q L − (∇_q∇_q̇ᵀL) q̇], from autograd (n Hessian rows per evaluation) and a batched linear solve.
/// The velocity Hessian ∂²L/∂q̇² must be invertible: where it is singular the field raises an
/// <see cref="ArgumentException"/> naming <c>lagrangian</c>, unless a <c>ridge</c> (ridge·I added to that Hessian, a
/// deliberate bias) is given. Use it with <see cref="Ode"/>.Solve(module, …) or as a <see cref="NeuralOdeBlock"/>'s
/// field; it works under every sensitivity (the adjoint differentiates third derivatives of L: use smooth activations).
/// </summary>
public sealed class LagrangianField : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.LagrangianField _field;

    /// <summary>Creates the field of <paramref name="lagrangian"/>.</summary>
    /// <param name="coordinates">The number of positions n (the state has 2n features: q then q̇).</param>
    /// <param name="lagrangian">L: maps states [N, 2n] to [N] or [N, 1], each sample on its own (no batch statistics).</param>
    /// <param name="ridge">Added to ∂²L/∂q̇² times the identity before the solve (≥ 0; 0 raises on a singular Hessian).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="coordinates"/> is below 1, or <paramref name="ridge"/>
    /// is negative or not finite.</exception>
    public LagrangianField(int coordinates, Module<torch.Tensor, torch.Tensor> lagrangian, double ridge = 0.0) : base("lagrangian_field")
    {
        ArgumentNullException.ThrowIfNull(lagrangian);
        _field = new Core.LagrangianField(coordinates, lagrangian, ridge);
        register_module("field", _field);
    }

    /// <summary>The number of positions n.</summary>
    public int Coordinates => _field.Coordinates;

    /// <summary>The learned scalar L(q, q̇).</summary>
    public Module<torch.Tensor, torch.Tensor> Lagrangian => _field.Lagrangian;

    /// <summary>The multiple of the identity added to ∂²L/∂q̇² before the solve.</summary>
    public double Ridge => _field.Ridge;

    /// <summary>The energy E = q̇ ⋅ ∂L/∂q̇ − L per sample, shape [N], at states of shape [N, 2n] (conserved by the field's
    /// exact flow); differentiable when grad is enabled.</summary>
    public torch.Tensor Energy(torch.Tensor x) => _field.Energy(x);

    /// <summary>(q̇, q̈) at x = [q, q̇], shape [N, 2n].</summary>
    /// <exception cref="ArgumentException">x is not [N, 2n] floating point, L does not return one number per sample,
    /// or ∂²L/∂q̇² is singular at some sample (the message names it).</exception>
    public override torch.Tensor forward(torch.Tensor x) => _field.forward(x);
}
