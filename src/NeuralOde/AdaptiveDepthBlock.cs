using System;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// The adaptive-depth Neural ODE (Dissecting Neural ODEs §4.3): each input x gets its own depth
/// S(x) = softplus(g_ω(x)) + <c>minDepth</c> from a learned module g_ω, and the block returns z(S(x)) of
/// dz/ds = f(s, x, z), z(0) = x. The whole batch is solved at once by rescaling depth per sample; ω is trained through
/// the end-time gradient by any sensitivity. Depth dependence in the field must take per-sample depths
/// (<see cref="DepthCat"/>); <see cref="DataControl"/> works as in <see cref="NeuralOdeBlock"/>.
/// </summary>
public sealed class AdaptiveDepthBlock : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.AdaptiveDepthModel _model;

    /// <summary>Creates the block.</summary>
    /// <param name="vectorField">f: a module from the state to its derivative.</param>
    /// <param name="depth">g_ω: a module from x to one number per sample ([N] or [N, 1]).</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control (in the rescaled depth τ ∈ [0, 1]); adaptive 1e-4 by default.</param>
    /// <param name="sensitivity">How gradients are computed; autograd by default.</param>
    /// <param name="minDepth">Smallest depth (≥ 0).</param>
    /// <param name="name">Module name.</param>
    public AdaptiveDepthBlock(Module<torch.Tensor, torch.Tensor> vectorField, Module<torch.Tensor, torch.Tensor> depth,
                              Solver? solver = null, StepSize? stepSize = null, Sensitivity? sensitivity = null,
                              double minDepth = 0.0, string name = "adaptive_depth") : base(name)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        ArgumentNullException.ThrowIfNull(depth);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive(1e-4, 1e-4));
        _model = new Core.AdaptiveDepthModel(name + "_core", vectorField, depth, tableau,
            control, (sensitivity ?? Sensitivities.Autograd()).Value, minDepth);
        register_module("model", _model);
    }

    /// <summary>S(x), one depth per sample, shape [N].</summary>
    public torch.Tensor Depths(torch.Tensor x) => _model.Depths(x);

    /// <summary>Statistics of the most recent forward solve.</summary>
    public SolveStatistics LastStatistics => SolveStatistics.From(_model.LastStatistics);

    /// <summary>Statistics of the backward solve of the most recent forward solve (adjoint sensitivities).</summary>
    public BackwardStatistics LastBackwardStatistics => BackwardStatistics.From(_model.LastBackwardStatistics);

    /// <summary>z(S(x)) for every sample.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _model.forward(x);

    /// <summary>The states at the <paramref name="fractions"/> of every sample's depth (0 to 1), and the depths.</summary>
    public (OdeSolution Solution, torch.Tensor Depths) Trajectory(torch.Tensor x, double[] fractions)
    {
        var result = _model.Trajectory(x, fractions);
        return (new OdeSolution(result.Item1), result.Item2);
    }
}
