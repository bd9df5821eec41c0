using System;
using Microsoft.FSharp.Core;
using TorchSharp;

namespace NeuralOde;

/// <summary>
/// The gradients of depth-variant parameters from the theorems of Dissecting Neural ODEs (Massaroli et al. 2020).
/// <c>field</c> evaluates f(s, x); <c>weights</c> returns the θ(s) tensor its last evaluation used (e.g.
/// <see cref="GalerkinLinear.LastWeights"/>); the loss is L(x(S)) (+ ∫ l) with ∂L/∂x(S) = <c>terminalGradient</c>.
/// </summary>
public static class DepthGradients
{
    /// <summary>Theorem 1: δℓ/δθ(s) = a(s)ᵀ ∂f/∂θ(s) at each of <paramref name="depths"/>, stacked [depths, n_θ].</summary>
    public static torch.Tensor Theorem1(Func<double, torch.Tensor, torch.Tensor> field, Func<torch.Tensor> weights, torch.Tensor x0,
                                        double start, double end, torch.Tensor terminalGradient, double[] depths,
                                        Solver? solver = null, StepSize? stepSize = null,
                                        Func<double, torch.Tensor, torch.Tensor>? integralLoss = null)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(depths);
        return Core.InfiniteDimensionalGradient.along(FuncConvert.FromFunc(field), FuncConvert.FromFunc(weights), x0,
            start, end, terminalGradient, Loss(integralLoss), depths,
            (solver ?? Solvers.Dopri5()).Tableau, (stepSize ?? StepSize.Adaptive()).Control);
    }

    /// <summary>Corollary 1: dℓ/dα = ∫ δℓ/δθ(s) ψ(s)ᵀ ds by Gauss–Legendre quadrature, nodes doubled until two results
    /// agree to <paramref name="tolerance"/>; shape [n_θ, m].</summary>
    public static torch.Tensor Spectral(Basis basis, Func<double, torch.Tensor, torch.Tensor> field, Func<torch.Tensor> weights,
                                        torch.Tensor x0, torch.Tensor terminalGradient, double tolerance = 1e-8,
                                        Solver? solver = null, StepSize? stepSize = null,
                                        Func<double, torch.Tensor, torch.Tensor>? integralLoss = null)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(weights);
        return Core.InfiniteDimensionalGradient.spectralConverged(basis.Value, tolerance, FuncConvert.FromFunc(field),
            FuncConvert.FromFunc(weights), x0, terminalGradient, Loss(integralLoss),
            (solver ?? Solvers.Dopri5()).Tableau, (stepSize ?? StepSize.Adaptive()).Control);
    }

    static FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>> Loss(Func<double, torch.Tensor, torch.Tensor>? loss) =>
        loss is null ? FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.None
                     : FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.Some(FuncConvert.FromFunc(loss));
}
