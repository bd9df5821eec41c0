using NeuralOde.Core;

namespace NeuralOde;

/// <summary>
/// An explicit Runge–Kutta method (its Butcher tableau). Get one from <see cref="Solvers"/>.
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

    /// <summary>Where the coefficients come from.</summary>
    public string Citation => Tableau.Citation;

    /// <inheritdoc />
    public override string ToString() => Name;
}
