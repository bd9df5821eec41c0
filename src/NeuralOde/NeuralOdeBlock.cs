using System;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// A Neural ODE block: maps x to z(S), the solution at the last of <c>times</c> of dz/ds = f_θ(z), z(times[0]) = x,
/// where f_θ is a TorchSharp module. Use it like any module: gradients reach f_θ's parameters and x by autograd
/// through the solver, and any TorchSharp optimizer trains it.
/// </summary>
public sealed class NeuralOdeBlock : Module<torch.Tensor, torch.Tensor>
{
    readonly Core.NeuralOdeModel _block;

    /// <summary>Creates the block.</summary>
    /// <param name="vectorField">f_θ: a module from the state to its derivative (same shape).</param>
    /// <param name="times">The depth grid; [0, 1] by default.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; adaptive with rtol = atol = 1e-4 by default, torchdyn's default.</param>
    /// <param name="sensitivity">How gradients are computed; autograd through the solver by default.</param>
    /// <param name="name">Module name.</param>
    public NeuralOdeBlock(Module<torch.Tensor, torch.Tensor> vectorField, double[]? times = null, Solver? solver = null,
                          StepSize? stepSize = null, Sensitivity? sensitivity = null, string name = "neural_ode") : base(name)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        _block = new Core.NeuralOdeModel(name + "_core", vectorField, (solver ?? Solvers.Dopri5()).Tableau,
            (stepSize ?? StepSize.Adaptive(1e-4, 1e-4)).Control, (sensitivity ?? Sensitivities.Autograd()).Value,
            times ?? new[] { 0.0, 1.0 });
        register_module("block", _block);
    }

    /// <summary>Statistics of the most recent forward solve.</summary>
    public SolveStatistics LastStatistics => SolveStatistics.From(_block.LastStatistics);

    /// <summary>Statistics of the backward solve of the most recent forward solve (adjoint sensitivities).</summary>
    public BackwardStatistics LastBackwardStatistics => BackwardStatistics.From(_block.LastBackwardStatistics);

    /// <summary>The depth grid.</summary>
    public double[] Times => _block.Times;

    /// <summary>z(S), the state at the last time of the grid.</summary>
    public override torch.Tensor forward(torch.Tensor x) => _block.forward(x);

    /// <summary>The states at every time of <paramref name="outputTimes"/> (the block's grid when null).</summary>
    public OdeSolution Trajectory(torch.Tensor x, double[]? outputTimes = null) =>
        new(outputTimes is null ? _block.Trajectory(x) : _block.Trajectory(x, outputTimes));
}
