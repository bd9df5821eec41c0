using System;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>How a continuous normalizing flow computes the divergence tr(∂f/∂z) (Grathwohl et al. 2019, FFJORD).</summary>
public enum TraceEstimator
{
    /// <summary>d vector–Jacobian products, one per coordinate: the exact trace. For small dimensions d.</summary>
    Exact,

    /// <summary>Hutchinson's unbiased estimate εᵀ(∂f/∂z)ε from one vector–Jacobian product, with probes ε drawn once per
    /// solve (FFJORD, eq. 7). Cost independent of d; the log-likelihood is then an unbiased estimate.</summary>
    Hutchinson,
}

/// <summary>The distribution of Hutchinson's probe vectors ε (both have E[εεᵀ] = I).</summary>
public enum HutchinsonNoise
{
    /// <summary>±1 with probability ½ each: the smaller variance (Hutchinson 1990).</summary>
    Rademacher,

    /// <summary>Standard normal entries.</summary>
    Gaussian,
}

/// <summary>
/// A continuous normalizing flow (Chen et al. 2018, Theorem 1; Grathwohl et al. 2019, FFJORD; the conditional flow of
/// Massaroli et al. 2020, §6.2): data x at t0 flow to a standard normal base at t1 along dz/dt = f(t, z), and
/// log p(x) = log N(z(t1); 0, I) + ∫ tr(∂f/∂z) dt. Its output (<c>forward</c>) is log p(x) per sample, so
/// training minimises <c>-flow.forward(x).mean()</c> with any TorchSharp optimizer. Put a <see cref="ConditionCat"/>
/// in the field to condition the flow on data (a label, features).
/// </summary>
public sealed class ContinuousNormalizingFlow : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.Cnf _flow;

    /// <summary>Creates the flow.</summary>
    /// <param name="vectorField">f: a module from z [N, d] to dz/dt [N, d]; each sample must be mapped by itself.</param>
    /// <param name="dimension">d, the number of features of one sample.</param>
    /// <param name="trace">How tr(∂f/∂z) is computed; exact by default (use Hutchinson for large d).</param>
    /// <param name="noise">The probes of Hutchinson's estimator; Rademacher by default.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; adaptive with rtol = atol = 1e-4 by default.</param>
    /// <param name="sensitivity">How gradients are computed; autograd through the solver by default. Adjoints see the
    /// same probes in their backward solve.</param>
    /// <param name="generator">Draws a seed for each solve's probes (reproducible training); the global generator
    /// when null.</param>
    /// <param name="t0">The time of the data; 0 by default.</param>
    /// <param name="t1">The time of the base distribution; 1 by default.</param>
    /// <param name="name">Module name.</param>
    /// <exception cref="ArgumentException">A bad dimension, span or step control, or a field whose width is not <paramref name="dimension"/> (a plain
    /// <c>Sequential</c> of <c>Linear</c> layers is checked here, any other field at its first evaluation); the message names it.</exception>
    public ContinuousNormalizingFlow(Module<torch.Tensor, torch.Tensor> vectorField, int dimension,
                                     TraceEstimator trace = TraceEstimator.Exact,
                                     HutchinsonNoise noise = HutchinsonNoise.Rademacher, Solver? solver = null,
                                     StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                     torch.Generator? generator = null, double t0 = 0.0, double t1 = 1.0,
                                     string name = "cnf") : base(name)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        var estimator = trace switch
        {
            TraceEstimator.Exact => Core.TraceEstimator.Exact,
            TraceEstimator.Hutchinson => Core.TraceEstimator.NewHutchinson(ToCore(noise)),
            _ => throw new ArgumentOutOfRangeException(nameof(trace), trace, "Use TraceEstimator.Exact or TraceEstimator.Hutchinson."),
        };
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive(1e-4, 1e-4));
        _flow = new Core.Cnf(name + "_core", vectorField, dimension, estimator, tableau,
            control, (sensitivity ?? Sensitivities.Autograd()).Value,
            t0, t1, generator);
        register_module("flow", _flow);
    }

    internal static Core.Noise ToCore(HutchinsonNoise noise) => noise switch
    {
        HutchinsonNoise.Rademacher => Core.Noise.Rademacher,
        HutchinsonNoise.Gaussian => Core.Noise.Gaussian,
        _ => throw new ArgumentOutOfRangeException(nameof(noise), noise, "Use HutchinsonNoise.Rademacher or HutchinsonNoise.Gaussian."),
    };

    /// <summary>d, the number of features of one sample.</summary>
    public int Dimension => _flow.Dimension;

    /// <summary>Which backend evaluates the field (default <see cref="FieldBackend.Auto"/>). Auto compiles a field
    /// that is a <c>Sequential</c> of <c>Linear</c> (and <see cref="GalerkinLinear"/>) layers with tanh, sigmoid, ReLU or
    /// softplus, for an unconditional float32 or float64 CPU batch: with <see cref="Sensitivities.Adjoint"/> (or no
    /// gradient wanted) the log-likelihood and its adjoint run on host buffers, the trace by forward-mode tangents and
    /// its gradients by their reverse — the module's steps, probes and gradients to rounding, about twice as fast.
    /// <see cref="SolveStatistics.Backend"/> of <see cref="LastStatistics"/> says which ran. Replaces UseFusedKernels
    /// (false is <see cref="FieldBackend.Module"/>).</summary>
    public FieldBackend Backend
    {
        get => FieldBackendChoices.FromCore(_flow.Backend);
        set => _flow.Backend = value.ToCore();
    }

    /// <summary>Statistics of the most recent solve (a log-likelihood, an encoding or a sampling).</summary>
    public SolveStatistics LastStatistics => SolveStatistics.From(_flow.LastStatistics);

    /// <summary>Statistics of the backward solve of the most recent solve (adjoint sensitivities), read after
    /// backward() has run.</summary>
    public BackwardStatistics LastBackwardStatistics => BackwardStatistics.From(_flow.LastBackwardStatistics);

    /// <summary>log p(x) per sample (shape [N]) of an unconditional flow.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _flow.LogProbability(x);

    /// <summary>
    /// log p(x | condition) = log N(z(t1); 0, I) + ∫ tr(∂f/∂z) dt per sample, shape [N] (FFJORD, eq. 4).
    /// </summary>
    /// <param name="x">The data, [N, d].</param>
    /// <param name="condition">[N, k] handed to the field's <see cref="ConditionCat"/> (or other data-controlled
    /// layers); null for an unconditional flow.</param>
    /// <exception cref="ArgumentException">x is not [N, d], or a condition is given to a field that cannot read it.</exception>
    public torch.Tensor LogProbability(torch.Tensor x, torch.Tensor? condition = null) => _flow.LogProbability(x, condition);

    /// <summary>z(t1) [N, d] and Δ(t1) = ∫ tr(∂f/∂z) dt [N]: the data mapped to the base, with the change in
    /// log-density.</summary>
    public (torch.Tensor Z, torch.Tensor DeltaLogProbability) Encode(torch.Tensor x, torch.Tensor? condition = null)
    {
        var (z, delta) = _flow.Encode(x, condition);
        return (z, delta);
    }

    /// <summary>x = z(t0) from base points z [N, d]: the flow solved backward from t1 to t0.</summary>
    public torch.Tensor Decode(torch.Tensor z, torch.Tensor? condition = null) => _flow.Decode(z, condition);

    /// <summary>
    /// n samples [n, d]: z ~ N(0, I) in the dtype and on the device of the field's parameters, decoded.
    /// </summary>
    /// <param name="n">How many samples.</param>
    /// <param name="condition">Null, one row [1, k] for every sample, or [n, k].</param>
    /// <param name="generator">Draws z; the global generator when null.</param>
    public torch.Tensor Sample(int n, torch.Tensor? condition = null, torch.Generator? generator = null) =>
        _flow.Sample(n, condition, generator);
}

/// <summary>
/// Appends the conditioning data c [N, k] to its input z [N, d], giving [N, d + k]: the layer that makes a vector field
/// data-controlled, dz/dt = f([z; c]) (Massaroli et al. 2020, §4.1 and §6.2). A <see cref="ContinuousNormalizingFlow"/>
/// hands it the condition before every evaluation.
/// </summary>
public sealed class ConditionCat : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.ConditionCat _layer;

    /// <summary>Creates the layer.</summary>
    /// <param name="name">Module name.</param>
    public ConditionCat(string name = "condition_cat") : base(name)
    {
        _layer = new Core.ConditionCat(name + "_core");
        register_module("layer", _layer);
    }

    /// <summary>[z; c]: z with the condition appended along the features.</summary>
    /// <exception cref="InvalidOperationException">No condition was handed to the layer.</exception>
    public override torch.Tensor forward(torch.Tensor z) => _layer.forward(z);
}
