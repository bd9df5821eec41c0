using System;
using NeuralOde.Core;

namespace NeuralOde;

/// <summary>
/// A Runge–Kutta method (its Butcher tableau): explicit, or implicit (ESDIRK) for stiff problems. Get one from
/// <see cref="Solvers"/>.
/// </summary>
public sealed class Solver
{
    internal Solver(ButcherTableau tableau) => Tableau = tableau;

    internal ButcherTableau Tableau { get; }

    /// <summary>Short name, e.g. "dopri5".</summary>
    public string Name => Tableau.Name;

    /// <summary>Order of the solution.</summary>
    public int Order => Tableau.Order;

    /// <summary>Number of stages (function evaluations per step, less one for FSAL methods).</summary>
    public int Stages => Tableau.Stages;

    /// <summary>True when the method has an embedded error estimate and so supports <see cref="StepSize.Adaptive"/>.</summary>
    public bool IsAdaptive => Tableau.IsAdaptive;

    /// <summary>True for an implicit (stiff) method: its stages are solved by Newton iterations (Kværnø) or by one linear
    /// system each (Rosenbrock).</summary>
    public bool IsImplicit => Tableau.IsImplicit;

    /// <summary>True for a Rosenbrock (linearly implicit) solver: one matrix factorisation per step, no Newton iteration.</summary>
    public bool IsRosenbrock => Tableau.IsRosenbrock;

    /// <summary>Where the coefficients come from.</summary>
    public string Citation => Tableau.Citation;

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>The solver and step control of a call, with the defaults applied and the pairing checked in C# names.</summary>
internal static class Method
{
    /// <summary>
    /// <paramref name="solver"/> (Dopri5 when null) and <paramref name="stepSize"/> (<paramref name="fallback"/> when
    /// null); an adaptive step size with a solver that has no error estimate is refused here, naming the C# API.
    /// </summary>
    internal static (ButcherTableau Tableau, StepControl Control) Of(Solver? solver, StepSize? stepSize, StepSize fallback)
    {
        var method = solver ?? Solvers.Dopri5();
        var step = stepSize ?? fallback;
        if (step.Control.IsAdaptive && !method.IsAdaptive)
            throw new ArgumentException(
                $"Solver '{method.Name}' has no embedded error estimate, so it cannot control its step size: give it " +
                $"StepSize.Fixed(dt) or StepSize.Steps(count), or use an adaptive solver (Solvers.Bosh3(), Dopri5(), Tsit5(), Dopri8()).",
                nameof(stepSize));
        return (method.Tableau, step.Control);
    }
}
