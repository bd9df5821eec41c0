using System;
using Microsoft.FSharp.Core;
using TorchSharp;

namespace NeuralOde;

/// <summary>
/// Running losses that regularise a Neural ODE's dynamics (Finlay et al. 2020, "How to train your neural ODE", eq. 3–4):
/// straighter, smoother flows that adaptive solvers integrate in fewer steps. Each returns a running loss l(t, x)
/// (a 0-dim tensor summed over the batch) to give to <c>Ode.Solve</c> as <c>integralLoss:</c>; its integral is
/// <see cref="OdeSolution.Integral"/>, differentiated by every sensitivity. Weight it when adding it to the loss.
/// </summary>
public static class Regularisers
{
    /// <summary>The kinetic energy l(t, x) = Σ ‖f(t, x)‖² over the batch (Finlay et al. 2020, eq. 3).</summary>
    /// <param name="vectorField">f(t, x), the same field the solve integrates.</param>
    /// <exception cref="ArgumentException">When evaluated: f(t, x) does not have the shape of x (the message names both).</exception>
    public static Func<double, torch.Tensor, torch.Tensor> KineticEnergy(Func<double, torch.Tensor, torch.Tensor> vectorField)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        return Wrap(Core.Regularisers.kineticEnergy(FuncConvert.FromFunc(vectorField)));
    }

    /// <summary>
    /// The Jacobian penalty l(t, x) = Σ ‖εᵀ ∂f/∂x‖² over the batch, an unbiased estimate of Σ ‖∂f/∂x‖²_F (Finlay et al.
    /// 2020, eq. 4). The probes ε are fixed for the life of the returned function (every evaluation of a solve sees
    /// the same ε): make a new one per solve. f must map each sample by itself.
    /// </summary>
    /// <param name="vectorField">f(t, x), the same field the solve integrates.</param>
    /// <exception cref="ArgumentException">When evaluated: f(t, x) does not have the shape of x (the message names both).</exception>
    /// <param name="noise">The probes' distribution; Rademacher by default.</param>
    /// <param name="generator">Draws the probes' seed; the global generator when null.</param>
    public static Func<double, torch.Tensor, torch.Tensor> JacobianFrobenius(Func<double, torch.Tensor, torch.Tensor> vectorField,
                                                                             HutchinsonNoise noise = HutchinsonNoise.Rademacher,
                                                                             torch.Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        return Wrap(Core.Regularisers.jacobianFrobenius(FuncConvert.FromFunc(vectorField),
            ContinuousNormalizingFlow.ToCore(noise), generator));
    }

    static Func<double, torch.Tensor, torch.Tensor> Wrap(FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>> loss) =>
        (t, x) => FSharpFunc<double, torch.Tensor>.InvokeFast(loss, t, x);
}
