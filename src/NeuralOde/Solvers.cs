using System.Collections.Generic;
using System.Linq;
using CoreSolvers = NeuralOde.Core.Solvers;

namespace NeuralOde;

/// <summary>The catalogue of solvers.</summary>
public static class Solvers
{
    /// <summary>Forward Euler, order 1, fixed step.</summary>
    public static Solver Euler() => new(CoreSolvers.euler);

    /// <summary>Explicit midpoint, order 2, fixed step.</summary>
    public static Solver Midpoint() => new(CoreSolvers.midpoint);

    /// <summary>Heun (explicit trapezoid), order 2, fixed step.</summary>
    public static Solver Heun() => new(CoreSolvers.heun);

    /// <summary>Classical Runge–Kutta, order 4, fixed step.</summary>
    public static Solver Rk4() => new(CoreSolvers.rk4);

    /// <summary>Bogacki–Shampine 3(2), adaptive.</summary>
    public static Solver Bosh3() => new(CoreSolvers.bosh3);

    /// <summary>Dormand–Prince 5(4), adaptive, with its fourth-order continuous extension. The usual default.</summary>
    public static Solver Dopri5() => new(CoreSolvers.dopri5);

    /// <summary>Tsitouras 5(4), adaptive, with its fourth-order continuous extension.</summary>
    public static Solver Tsit5() => new(CoreSolvers.tsit5);

    /// <summary>Prince–Dormand 8(7), adaptive, for tight tolerances.</summary>
    public static Solver Dopri8() => new(CoreSolvers.dopri8);

    /// <summary>A solver by name ("euler", "midpoint", "heun", "rk4", "bosh3", "dopri5", "tsit5", "dopri8").</summary>
    /// <exception cref="System.ArgumentException">The name is not known; the message lists the known ones.</exception>
    public static Solver ByName(string name) => new(CoreSolvers.byName(name));

    /// <summary>Every solver, fixed-step ones first.</summary>
    public static IReadOnlyList<Solver> All => CoreSolvers.all.Select(t => new Solver(t)).ToList();
}
