using System.Collections.Generic;
using System.Linq;
using System;
using Microsoft.FSharp.Core;
using TorchSharp;
using NeuralOde.Core;
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

    /// <summary>
    /// Kværnø's ESDIRK 3(2): implicit, L-stable and stiffly accurate, adaptive — for stiff problems at loose
    /// tolerances. Each stage is solved by a simplified Newton iteration with the Jacobian ∂f/∂y by autograd (or
    /// <paramref name="jacobian"/>), kept across stages and steps. Solves on tensors, with gradients by autograd
    /// or by the adjoint sensitivities (which also take it for their backward solve: the adjoint of a stiff system is
    /// stiff — <c>Sensitivities.InterpolatedAdjoint(solver: Solvers.Kvaerno5())</c>).
    /// </summary>
    /// <param name="rowBlocks">The state is a batch [N, …] whose rows do not interact (each row of f depends on the
    /// same row of x only): the Jacobian is then N blocks of one row's size instead of one dense matrix over the whole
    /// state. Declared, not detected: never set it for a field that mixes rows (a batch norm, a sum over the batch).</param>
    /// <param name="jacobian">Your own Jacobian (t, x) ↦ ∂f/∂x: [n, n] with n = x.numel(), or [N, d, d] with
    /// <paramref name="rowBlocks"/>; null: by autograd.</param>
    public static Solver Kvaerno3(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.kvaerno3, rowBlocks, jacobian);

    /// <summary>Kværnø's ESDIRK 4(3): implicit, L-stable and stiffly accurate, adaptive. As <see cref="Kvaerno3"/>.</summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian (see <see cref="Kvaerno3"/>); null: by autograd.</param>
    public static Solver Kvaerno4(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.kvaerno4, rowBlocks, jacobian);

    /// <summary>
    /// Kværnø's ESDIRK 5(4): implicit, L-stable and stiffly accurate, adaptive — the stiff solver for tight
    /// tolerances (as diffrax's Kvaerno5). As <see cref="Kvaerno3"/>.
    /// </summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian (see <see cref="Kvaerno3"/>); null: by autograd.</param>
    public static Solver Kvaerno5(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.kvaerno5, rowBlocks, jacobian);

    /// <summary>
    /// Automatic stiffness switching (as Julia's <c>AutoTsit5(Rosenbrock23())</c>): steps with
    /// <paramref name="nonStiff"/> while the problem is not stiff and with <paramref name="stiff"/> where it is. The
    /// explicit method's own stages estimate the Jacobian's largest eigenvalue ρ; after ten accepted steps with hρ above
    /// 90% of its stability boundary the implicit method takes over, and after three steps in a row where the explicit
    /// method would be stable again (ρ by power iteration on f, two evaluations per step) it hands back. Where it
    /// switched is in <see cref="SolveStatistics.Switches"/>. Gradients by autograd or the adjoints, as its methods'.
    /// </summary>
    /// <param name="nonStiff">An explicit adaptive method with two stages at one node: <see cref="Tsit5"/> (default) or
    /// <see cref="Dopri5"/>.</param>
    /// <param name="stiff">An implicit adaptive method: <see cref="Kvaerno5"/> (default), with its row blocks or
    /// Jacobian options.</param>
    /// <exception cref="ArgumentException">A method that does not fit its role, named.</exception>
    public static Solver AutoSwitch(Solver? nonStiff = null, Solver? stiff = null) =>
        new(CoreSolvers.autoSwitch((nonStiff ?? Tsit5()).Tableau, (stiff ?? Kvaerno5()).Tableau));

    /// <summary>
    /// Kennedy &amp; Carpenter's additive Runge–Kutta 3(2) (ARK3(2)4L[2]SA), an IMEX method, adaptive: on a split
    /// problem (<see cref="Ode.SolveSplit"/>) the non-stiff part f_E is treated explicitly and the stiff part f_I
    /// implicitly (L-stable, stiffly accurate), so the Newton iterations see f_I's Jacobian alone — for
    /// convection–diffusion–reaction problems whose stiffness lives in one term (diffrax's KenCarp3, SciML's
    /// KenCarp3). On a problem that is not split it is an ESDIRK method for the whole field.
    /// </summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian (see <see cref="Kvaerno3"/>) — of the stiff part f_I for a split
    /// problem, of the whole field otherwise; null: by autograd.</param>
    public static Solver KenCarp3(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.kenCarp3, rowBlocks, jacobian);

    /// <summary>Kennedy &amp; Carpenter's IMEX ARK 4(3) (ARK4(3)6L[2]SA), adaptive. As <see cref="KenCarp3"/>.</summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian of the stiff part (see <see cref="KenCarp3"/>); null: by autograd.</param>
    public static Solver KenCarp4(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.kenCarp4, rowBlocks, jacobian);

    /// <summary>Kennedy &amp; Carpenter's IMEX ARK 5(4) (ARK5(4)8L[2]SA), adaptive, for tight tolerances. As
    /// <see cref="KenCarp3"/>.</summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian of the stiff part (see <see cref="KenCarp3"/>); null: by autograd.</param>
    public static Solver KenCarp5(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.kenCarp5, rowBlocks, jacobian);

    /// <summary>
    /// Shampine &amp; Reichelt's Rosenbrock 2(3) (MATLAB's ode23s): linearly implicit, L-stable, adaptive — for stiff
    /// problems at loose tolerances. Each step factorises one matrix (1/(hγ)) I − ∂f/∂x, with the Jacobian by
    /// autograd (or <paramref name="jacobian"/>) at the step's start, and solves one linear system per stage: no
    /// Newton iteration, so it is cheaper per step than the Kværnø solvers, but it needs the exact Jacobian. Solves
    /// on tensors, with gradients by autograd (the Jacobian enters the graph).
    /// </summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian (see <see cref="Kvaerno3"/>), exact; null: by autograd.</param>
    public static Solver Rosenbrock23(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.rosenbrock23, rowBlocks, jacobian);

    /// <summary>
    /// Hairer &amp; Wanner's RODAS 4(3): linearly implicit, L-stable and stiffly accurate, adaptive — for stiff
    /// problems at moderate tolerances. As <see cref="Rosenbrock23"/>.
    /// </summary>
    /// <param name="rowBlocks">Per-row Jacobian blocks for a batch of rows that do not interact (see <see cref="Kvaerno3"/>).</param>
    /// <param name="jacobian">Your own Jacobian (see <see cref="Kvaerno3"/>), exact; null: by autograd.</param>
    public static Solver Rodas4(bool rowBlocks = false, Func<double, torch.Tensor, torch.Tensor>? jacobian = null) =>
        WithNewton(CoreSolvers.rodas4, rowBlocks, jacobian);

    static Solver WithNewton(ButcherTableau tableau, bool rowBlocks, Func<double, torch.Tensor, torch.Tensor>? jacobian)
    {
        if (!rowBlocks && jacobian is null) return new(tableau);
        var options = new NewtonOptions(
            rowBlocks ? JacobianStructure.RowBlocks : JacobianStructure.Dense,
            jacobian is null
                ? FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.None
                : FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.Some(FuncConvert.FromFunc(jacobian)),
            NewtonOptionsModule.defaults.Tolerance, NewtonOptionsModule.defaults.MaxIterations, NewtonOptionsModule.defaults.MaxFailures);
        return new(CoreSolvers.withNewton(options, tableau));
    }

    /// <summary>A solver by name ("euler", "midpoint", "heun", "rk4", "bosh3", "dopri5", "tsit5", "dopri8",
    /// "kvaerno3", "kvaerno4", "kvaerno5", "kencarp3", "kencarp4", "kencarp5", "rosenbrock23", "rodas4").</summary>
    /// <exception cref="System.ArgumentException">The name is not known; the message lists the known ones.</exception>
    public static Solver ByName(string name) => new(CoreSolvers.byName(name));

    /// <summary>
    /// Your own explicit Runge–Kutta method, as its Butcher tableau: stages k_i = f(t + c_i h, y + h Σ_j a_ij k_j),
    /// y1 = y + h Σ b_i k_i and, when adaptive, the error estimate h Σ e_i k_i with e = b − b̂. The tableau is
    /// checked when built (row sums of A equal c, b sums to one, e sums to zero, a continuous extension reproduces b
    /// at θ = 1 and is zero at θ = 0); solutions between steps use <paramref name="denseWeights"/> when given, else
    /// cubic Hermite interpolation.
    /// </summary>
    /// <param name="name">A short name, shown in messages.</param>
    /// <param name="order">The order of y1.</param>
    /// <param name="c">Nodes c_i, one per stage.</param>
    /// <param name="a">Row i holds a_i0 … a_i,i−1 (row 0 is empty).</param>
    /// <param name="b">Solution weights b_i.</param>
    /// <param name="errorWeights">e_i = b_i − b̂_i for an adaptive method, with <paramref name="embeddedOrder"/>; null for a fixed-step one.</param>
    /// <param name="embeddedOrder">The order of the embedded solution b̂.</param>
    /// <param name="denseWeights">θ ↦ b_i(θ), the continuous extension (optionally one more weight, for f(t + h, y1)).</param>
    /// <param name="citation">Where the coefficients come from.</param>
    /// <exception cref="System.ArgumentException">The tableau is inconsistent; the message says which condition fails.</exception>
    public static Solver Custom(string name, int order, double[] c, double[][] a, double[] b,
                                double[]? errorWeights = null, int? embeddedOrder = null,
                                Func<double, double[]>? denseWeights = null, string citation = "")
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Any(row => row is null)) throw new ArgumentNullException(nameof(a), "Every row of a must be given (row 0 is an empty array).");
        if (order < 1) throw new ArgumentOutOfRangeException(nameof(order), order, $"order must be at least 1; got {order}.");
        var dense = denseWeights is null
            ? DenseOutput.Hermite
            : DenseOutput.NewContinuous(FuncConvert.FromFunc<double, double[]>(theta =>
                denseWeights(theta) ?? throw new ArgumentException($"denseWeights({theta}) returned null.", nameof(denseWeights))));
        return new(ButcherTableauModule.create(name, order,
            embeddedOrder is { } p ? FSharpOption<int>.Some(p) : FSharpOption<int>.None,
            c, a, b, errorWeights is null ? FSharpOption<double[]>.None : FSharpOption<double[]>.Some(errorWeights),
            dense, citation ?? ""));
    }

    /// <summary>The implicit (stiff) solvers: Kvaerno3, Kvaerno4, Kvaerno5, KenCarp3, KenCarp4, KenCarp5, Rosenbrock23,
    /// Rodas4.</summary>
    public static IReadOnlyList<Solver> Implicit => CoreSolvers.implicitSolvers.Select(t => new Solver(t)).ToList();

    /// <summary>Every explicit solver, fixed-step ones first.</summary>
    public static IReadOnlyList<Solver> All => CoreSolvers.all.Select(t => new Solver(t)).ToList();
}
