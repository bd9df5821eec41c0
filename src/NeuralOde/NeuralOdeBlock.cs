using System;
using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// A Neural ODE block: maps x to z(S), the solution at the last of <c>times</c> of dz/ds = f_θ(s, x, z),
/// z(times[0]) = x, where f_θ is a TorchSharp module. Compose the field like any module: depth-aware layers
/// (<see cref="GalerkinLinear"/>, <see cref="GalerkinConv2d"/>, <see cref="StackedLinear"/>, <see cref="DepthCat"/>,
/// your own <see cref="DepthAwareModule"/>) are told the depth, and <see cref="DataControl"/> the block's input, before
/// every evaluation. Use it like any module: gradients reach f_θ's parameters and x by the chosen sensitivity (the
/// adjoints find the field's parameters themselves), and any TorchSharp optimizer trains it.
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
    /// <param name="integralLoss">A running loss l(s, z) (a 0-dim tensor) integrated over the depth; its value comes
    /// with <see cref="ForwardWithIntegral"/> and <see cref="Trajectory"/>.</param>
    /// <param name="kineticEnergy">Weight of the kinetic-energy regulariser ∫ Σ‖f‖² ds (Finlay et al. 2020), added to
    /// the integral; 0 for none. It sees the depth and data as the field does.</param>
    /// <param name="jacobianFrobenius">Weight of the Jacobian regulariser ∫ Σ‖εᵀ∂f/∂z‖² ds (Hutchinson, Rademacher
    /// probes drawn anew for each solve); 0 for none.</param>
    /// <param name="name">Module name.</param>
    public NeuralOdeBlock(Module<torch.Tensor, torch.Tensor> vectorField, double[]? times = null, Solver? solver = null,
                          StepSize? stepSize = null, Sensitivity? sensitivity = null,
                          Func<double, torch.Tensor, torch.Tensor>? integralLoss = null, double kineticEnergy = 0.0,
                          double jacobianFrobenius = 0.0, string name = "neural_ode") : base(name)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        var loss = integralLoss is null
            ? FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.None
            : FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.Some(FuncConvert.FromFunc(integralLoss));
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive(1e-4, 1e-4));
        _block = new Core.NeuralOdeModel(name + "_core", vectorField, tableau,
            control, (sensitivity ?? Sensitivities.Autograd()).Value,
            times ?? new[] { 0.0, 1.0 }, loss);
        if (kineticEnergy != 0.0 || jacobianFrobenius != 0.0)
            _block.Regulariser = FSharpOption<FSharpFunc<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>, FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>>.Some(
                Core.Regularisers.weighted(kineticEnergy, jacobianFrobenius));
        register_module("block", _block);
    }

    /// <summary>Statistics of the most recent forward solve.</summary>
    public SolveStatistics LastStatistics => SolveStatistics.From(_block.LastStatistics);

    /// <summary>Statistics of the backward solve of the most recent forward solve (adjoint sensitivities).</summary>
    public BackwardStatistics LastBackwardStatistics => BackwardStatistics.From(_block.LastBackwardStatistics);

    /// <summary>Which backend evaluates the field (default <see cref="FieldBackend.Auto"/>). Auto compiles a field
    /// that is a <c>Sequential</c> of <c>Linear</c> and <see cref="GalerkinLinear"/> layers, each optionally followed
    /// by tanh, sigmoid, ReLU or softplus, on a float32 or float64 CPU state (no running loss or regulariser, no data
    /// control), and the solve runs on host buffers wherever its sensitivity allows: autograd with fixed steps by the
    /// discrete adjoint of the steps, the adjoints, and any solve that needs no gradient — with the same steps,
    /// evaluations and gradients as the module, to rounding. <see cref="SolveStatistics.Backend"/> of
    /// <see cref="LastStatistics"/> says which ran (and why not, when the field was not compiled).
    /// Replaces UseFusedKernels (false is <see cref="FieldBackend.Module"/>).</summary>
    public FieldBackend Backend
    {
        get => FieldBackendChoices.FromCore(_block.Backend);
        set => _block.Backend = value.ToCore();
    }

    /// <summary>Threads a compiled backend splits the batch's rows over (null: libtorch's intra-op thread count at
    /// each solve). Only this block's solves are affected.</summary>
    public int? Threads
    {
        get => _block.Threads is { } t ? t.Value : null;
        set
        {
            if (value is < 1) throw new System.ArgumentOutOfRangeException(nameof(Threads), value, "Threads must be at least 1, or null for libtorch's count.");
            _block.Threads = value is { } v ? Microsoft.FSharp.Core.FSharpOption<int>.Some(v) : null;
        }
    }

    /// <summary>The depth grid.</summary>
    public double[] Times => _block.Times;

    /// <summary>Whether the field reads the block's input (it holds a <see cref="DataControl"/>).</summary>
    public bool IsDataControlled => _block.IsDataControlled;

    /// <summary>z(S), the state at the last time of the grid.</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/> is floating point of another dtype than the field's
    /// parameters (the message names both).</exception>
    public override torch.Tensor forward(torch.Tensor x) => _block.forward(x);

    /// <summary>z(S) and ∫ l(s, z(s)) ds (the running loss plus the weighted regularisers); needs a block made with an
    /// <c>integralLoss</c> or a regulariser weight.</summary>
    public (torch.Tensor Output, torch.Tensor Integral) ForwardWithIntegral(torch.Tensor x)
    {
        var result = _block.ForwardWithIntegral(x);
        return (result.Item1, result.Item2);
    }

    /// <summary>The states at every time of <paramref name="outputTimes"/> (the block's grid when null), and the
    /// running loss's integral when the block has one.</summary>
    public OdeSolution Trajectory(torch.Tensor x, double[]? outputTimes = null) =>
        new(outputTimes is null ? _block.Trajectory(x) : _block.Trajectory(x, outputTimes));

    /// <summary>The states at the times of the 1-D tensor <paramref name="timeTensor"/>; with an adjoint sensitivity,
    /// backward() fills its gradient dL/dtimes.</summary>
    public OdeSolution TrajectoryAt(torch.Tensor x, torch.Tensor timeTensor) => new(_block.Trajectory(x, timeTensor));

    /// <summary>
    /// The block's non-throwing path: solves from x (gradients by autograd) with a status per sample, as
    /// <see cref="Ode.TrySolveRows"/> — samples whose solve blows up or drives the step size to underflow are marked
    /// failed with the time (their states NaN after it) and the others are solved again without them. Not for a
    /// block with a running loss or a regulariser.
    /// </summary>
    /// <param name="x">The batch [N, ...].</param>
    /// <param name="outputTimes">Output times; the block's grid when null.</param>
    public RowsSolution TryTrajectory(torch.Tensor x, double[]? outputTimes = null) =>
        new(outputTimes is null ? _block.TryTrajectory(x) : _block.TryTrajectory(x, outputTimes));
}
