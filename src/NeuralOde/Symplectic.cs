using System;
using Microsoft.FSharp.Core;
using TorchSharp;
using CoreSymplectic = NeuralOde.Core.Symplectic;

namespace NeuralOde;

/// <summary>A symplectic splitting method (its drift and kick coefficients). Get one from <see cref="Symplectic"/>.</summary>
public sealed class SymplecticIntegrator
{
    internal SymplecticIntegrator(Core.SymplecticMethod method) => Method = method;

    internal Core.SymplecticMethod Method { get; }

    /// <summary>E.g. "leapfrog".</summary>
    public string Name => Method.Name;

    /// <summary>Order of accuracy.</summary>
    public int Order => Method.Order;

    /// <summary>The name.</summary>
    public override string ToString() => Name;
}

/// <summary>
/// Symplectic integration of separable Hamiltonian systems H(q, p) = ½‖p‖² + V(q) (unit mass): q̇ = p, ṗ = a(q) =
/// −∇V(q). The energy error stays bounded over long horizons instead of drifting as with Runge–Kutta methods.
/// </summary>
public static class Symplectic
{
    /// <summary>Störmer–Verlet / leapfrog, second order, one force evaluation per step.</summary>
    public static SymplecticIntegrator Leapfrog() => new(CoreSymplectic.leapfrog);

    /// <summary>Yoshida's fourth-order composition of leapfrog steps, three force evaluations per step.</summary>
    public static SymplecticIntegrator Yoshida4() => new(CoreSymplectic.yoshida4);

    /// <summary>
    /// Positions and momenta after <paramref name="steps"/> steps of size <paramref name="dt"/>, saved every
    /// <paramref name="saveEvery"/> steps (first and last included): Q and P of shape [k, ...q0.shape].
    /// </summary>
    /// <param name="integrator">The method.</param>
    /// <param name="acceleration">q ↦ −∇V(q), with q's shape.</param>
    /// <param name="q0">Initial positions.</param>
    /// <param name="p0">Initial momenta, q0's shape.</param>
    /// <param name="dt">Step size (negative integrates backward).</param>
    /// <param name="steps">Number of steps.</param>
    /// <param name="saveEvery">Save the state every this many steps.</param>
    /// <exception cref="ArgumentException">Shapes differ, dt is zero or not finite, or steps or saveEvery is below 1.</exception>
    /// <exception cref="OdeSolveException">The acceleration returned NaN or Inf (<see cref="OdeFailure.NonFiniteValue"/>, with the time).</exception>
    public static (torch.Tensor Q, torch.Tensor P) Solve(SymplecticIntegrator integrator, Func<torch.Tensor, torch.Tensor> acceleration,
                                                         torch.Tensor q0, torch.Tensor p0, double dt, int steps, int saveEvery = 1)
    {
        ArgumentNullException.ThrowIfNull(integrator);
        ArgumentNullException.ThrowIfNull(acceleration);
        var (q, p) = CoreSymplectic.solve(integrator.Method, FuncConvert.FromFunc(acceleration), q0, p0, dt, steps, saveEvery).ToValueTuple();
        return (q, p);
    }

    /// <summary>
    /// The asynchronous leapfrog (MALI; torchdyn's AsynchronousLeapfrog) for a general field dz/dt = f(t, z): the state
    /// carries a velocity v ≈ dz/dt (starting at f(t0, z0)); each step z½ = z + (h/2) v, v′ = 2 f(t + h/2, z½) − v,
    /// z′ = z½ + (h/2) v′ is second order, costs one evaluation and is exactly invertible (the same step with −h).
    /// Returns the states at the <paramref name="steps"/> + 1 equally spaced times of [t0, t1] and the final velocity.
    /// Differentiable by autograd.
    /// </summary>
    /// <exception cref="ArgumentException">An empty or non-finite span, steps below 1, or a field returning the wrong shape.</exception>
    public static (torch.Tensor States, torch.Tensor Velocity) SolveAsynchronousLeapfrog(Func<double, torch.Tensor, torch.Tensor> field,
                                                                                        torch.Tensor z0, double t0, double t1, int steps)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(z0);
        var (states, velocity) = Core.AsyncLeapfrog.solve(FuncConvert.FromFunc(field), z0, t0, t1, steps).ToValueTuple();
        return (states, velocity);
    }
}
