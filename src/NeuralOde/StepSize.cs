using Microsoft.FSharp.Core;
using NeuralOde.Core;

namespace NeuralOde;

/// <summary>How step sizes are chosen: fixed, a number of equal steps, or adaptive error control.</summary>
public sealed class StepSize
{
    internal StepSize(StepControl control) => Control = control;

    internal StepControl Control { get; }

    /// <summary>Fixed steps of size <paramref name="dt"/>; the last step is shortened to end on the final time.</summary>
    /// <param name="dt">The step size (finite, &gt; 0).</param>
    /// <param name="maxSteps">The step budget: a solve that would take more steps is refused before it starts.</param>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="dt"/> is not finite and positive.</exception>
    public static StepSize Fixed(double dt, int maxSteps = 1_000_000) => Validated(StepControl.NewFixed(dt, maxSteps));

    /// <summary><paramref name="count"/> equal steps over the whole time span.</summary>
    /// <param name="count">Number of steps (≥ 1).</param>
    /// <param name="maxSteps">The step budget (a million by default); a larger <paramref name="count"/> is refused.</param>
    public static StepSize Steps(int count, int maxSteps = 1_000_000) => Validated(StepControl.NewSteps(count, maxSteps));

    /// <summary>
    /// Error-controlled steps (needs an adaptive solver): a step is accepted when the RMS of
    /// err / (atol + rtol·max(|y0|, |y1|)) is at most 1; the next step comes from a PI controller.
    /// </summary>
    /// <param name="rtol">Relative tolerance (&gt; 0).</param>
    /// <param name="atol">Absolute tolerance (&gt; 0).</param>
    /// <param name="maxSteps">Most steps (accepted plus rejected) before the solve fails.</param>
    /// <param name="initialStep">First step size; null chooses it automatically.</param>
    /// <param name="safety">Safety factor on the optimal step.</param>
    /// <param name="minFactor">Smallest factor a step may shrink by.</param>
    /// <param name="maxFactor">Largest factor a step may grow by.</param>
    /// <param name="pCoeff">Proportional coefficient of the PI controller (0: I controller).</param>
    /// <param name="iCoeff">Integral coefficient of the PI controller.</param>
    /// <param name="minStep">Smallest step size (0: none): a step the controller shrinks below it fails the solve at
    /// once with <see cref="OdeFailure.StepSizeUnderflow"/>.</param>
    /// <param name="maxStep">Largest step size (+∞: none).</param>
    public static StepSize Adaptive(double rtol = 1e-6, double atol = 1e-9, int maxSteps = 10_000, double? initialStep = null,
                                    double safety = 0.9, double minFactor = 0.2, double maxFactor = 10.0,
                                    double pCoeff = 0.0, double iCoeff = 1.0, double minStep = 0.0,
                                    double maxStep = double.PositiveInfinity) =>
        Validated(StepControl.NewAdaptive(new AdaptiveOptions(
            rtol, atol, maxSteps, initialStep is double h ? FSharpOption<double>.Some(h) : FSharpOption<double>.None,
            safety, minFactor, maxFactor, pCoeff, iCoeff, minStep, maxStep)));

    static StepSize Validated(StepControl control)
    {
        StepControlModule.validate(control);
        return new StepSize(control);
    }

    /// <inheritdoc />
    public override string ToString() => Control switch
    {
        StepControl.Fixed f => $"StepSize.Fixed(dt: {f.dt}, maxSteps: {f.maxSteps})",
        StepControl.Steps n => $"StepSize.Steps(count: {n.count}, maxSteps: {n.maxSteps})",
        StepControl.Adaptive a => $"StepSize.Adaptive(rtol: {a.Item.RTol}, atol: {a.Item.ATol}, maxSteps: {a.Item.MaxSteps}" +
            (a.Item.InitialStep is null ? "" : $", initialStep: {a.Item.InitialStep.Value}") +
            $", safety: {a.Item.Safety}, minFactor: {a.Item.MinFactor}, maxFactor: {a.Item.MaxFactor}, pCoeff: {a.Item.PCoeff}, iCoeff: {a.Item.ICoeff}" +
            (a.Item.MinStep > 0 ? $", minStep: {a.Item.MinStep}" : "") +
            (double.IsPositiveInfinity(a.Item.MaxStep) ? "" : $", maxStep: {a.Item.MaxStep}") + ")",
        _ => Control.ToString(),
    };
}
