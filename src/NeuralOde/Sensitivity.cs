using Microsoft.FSharp.Core;
using CoreSensitivity = NeuralOde.Core.Sensitivity;

namespace NeuralOde;

/// <summary>How gradients of a solve are computed. Get one from <see cref="Sensitivities"/>.</summary>
public sealed class Sensitivity
{
    internal Sensitivity(CoreSensitivity value) => Value = value;

    internal CoreSensitivity Value { get; }

    /// <inheritdoc />
    public override string ToString() => Value switch
    {
        CoreSensitivity.Adjoint a => Describe("Adjoint", a.Item),
        CoreSensitivity.InterpolatedAdjoint i => Describe("InterpolatedAdjoint", i.Item),
        _ => "Sensitivities.Autograd()",
    };

    static string Describe(string name, Core.AdjointOptions o) =>
        $"Sensitivities.{name}(" + (o.Solver is null ? "" : $"solver: {o.Solver.Value.Name}, ") +
        (o.Control is null ? "" : $"stepSize: {new StepSize(o.Control.Value)}, ") +
        $"seminorm: {(o.Seminorm ? "true" : "false")}, checkpoints: {o.Checkpoints})";
}

/// <summary>The catalogue of sensitivity methods (torchdyn's <c>sensitivity=</c>, diffrax's <c>adjoint=</c>).</summary>
public static class Sensitivities
{
    /// <summary>Backpropagation through the solver's operations: exact gradients of the discrete solve; memory grows
    /// with the number of steps.</summary>
    public static Sensitivity Autograd() => new(CoreSensitivity.Autograd);

    /// <summary>
    /// The adjoint method by backsolve (Chen et al. 2018; with integral losses, Massaroli et al. 2020, Proposition 1):
    /// memory constant in the number of steps. Gradients reach the initial state, the <c>parameters</c> given to the
    /// solve and, when a time tensor is given, the output times.
    /// </summary>
    /// <param name="solver">Backward solver; the forward one when null.</param>
    /// <param name="stepSize">Backward step control; the forward one when null.</param>
    /// <param name="seminorm">Error control over the state and adjoint only (fewer backward steps).</param>
    /// <param name="checkpoints">Extra checkpoints per output interval where the state is restarted from the forward
    /// solution.</param>
    public static Sensitivity Adjoint(Solver? solver = null, StepSize? stepSize = null, bool seminorm = false, int checkpoints = 0) =>
        new(CoreSensitivity.NewAdjoint(Options(solver, stepSize, seminorm, checkpoints)));

    /// <summary>
    /// The interpolated adjoint: the forward solution between checkpoints is recomputed and interpolated while the
    /// adjoint is integrated backward; use it when the backsolve is unstable. Memory grows with the steps between
    /// two checkpoints.
    /// </summary>
    public static Sensitivity InterpolatedAdjoint(Solver? solver = null, StepSize? stepSize = null, bool seminorm = false, int checkpoints = 0) =>
        new(CoreSensitivity.NewInterpolatedAdjoint(Options(solver, stepSize, seminorm, checkpoints)));

    static Core.AdjointOptions Options(Solver? solver, StepSize? stepSize, bool seminorm, int checkpoints) =>
        new(solver is null ? FSharpOption<Core.ButcherTableau>.None : FSharpOption<Core.ButcherTableau>.Some(solver.Tableau),
            stepSize is null ? FSharpOption<Core.StepControl>.None : FSharpOption<Core.StepControl>.Some(stepSize.Control),
            seminorm, checkpoints);
}
