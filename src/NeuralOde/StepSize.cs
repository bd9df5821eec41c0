using Microsoft.FSharp.Core;
using NeuralOde.Core;

namespace NeuralOde;

/// <summary>How step sizes are chosen: fixed, a number of equal steps, or adaptive error control.</summary>
public sealed class StepSize
{
    StepSize(StepControl control) => Control = control;

    internal StepControl Control { get; }

    /// <summary>Fixed steps of size <paramref name="dt"/>; the last step is shortened to end on the final time.</summary>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="dt"/> is not finite and positive.</exception>
    public static StepSize Fixed(double dt) => Validated(StepControl.NewFixed(dt));

    /// <summary><paramref name="count"/> equal steps over the whole time span.</summary>
    public static StepSize Steps(int count) => Validated(StepControl.NewSteps(count));

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
    public static StepSize Adaptive(double rtol = 1e-6, double atol = 1e-9, int maxSteps = 10_000, double? initialStep = null,
                                    double safety = 0.9, double minFactor = 0.2, double maxFactor = 10.0,
                                    double pCoeff = 0.0, double iCoeff = 1.0) =>
        Validated(StepControl.NewAdaptive(new AdaptiveOptions(
            rtol, atol, maxSteps, initialStep is double h ? FSharpOption<double>.Some(h) : FSharpOption<double>.None,
            safety, minFactor, maxFactor, pCoeff, iCoeff)));

    static StepSize Validated(StepControl control)
    {
        StepControlModule.validate(control);
        return new StepSize(control);
    }

    /// <inheritdoc />
    public override string ToString() => Control.ToString();
}
