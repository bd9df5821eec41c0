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
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return Core.InfiniteDimensionalGradient.along(FuncConvert.FromFunc(field), FuncConvert.FromFunc(weights), x0,
            start, end, terminalGradient, Loss(integralLoss), depths,
            tableau, control);
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
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return Core.InfiniteDimensionalGradient.spectralConverged(basis.Value, tolerance, FuncConvert.FromFunc(field),
            FuncConvert.FromFunc(weights), x0, terminalGradient, Loss(integralLoss),
            tableau, control);
    }

    /// <summary>The gradients of a Galerkin layer's trainable dilation d and shift h (θ(s) = α ψ(d·s + h)) from the
    /// Theorem 1 gradient by the chain rule: dℓ/dd = ∫ ⟨δℓ/δθ(s), α ψ'(d·s + h)⟩ s ds, dℓ/dh = ∫ ⟨δℓ/δθ(s), α ψ'(d·s + h)⟩ ds
    /// over the basis' domain, by Gauss–Legendre quadrature doubled until two results agree to
    /// <paramref name="tolerance"/>; shape [2]: dℓ/dd, dℓ/dh.</summary>
    /// <param name="basis">The layer's basis ψ.</param>
    /// <param name="coefficients">The layer's α, [n_θ, m] (e.g. <see cref="GalerkinLinear.Coefficients"/>).</param>
    /// <param name="dilation">The layer's dilation d.</param>
    /// <param name="shift">The layer's shift h.</param>
    /// <param name="field">The field f(s, x) that reads the layer's weights.</param>
    /// <param name="weights">The θ(s) the last evaluation used (e.g. <see cref="GalerkinLinear.LastWeights"/>).</param>
    /// <param name="x0">The initial state.</param>
    /// <param name="terminalGradient">∂L/∂x(S).</param>
    /// <param name="tolerance">Agreement of successive quadratures.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    /// <param name="integralLoss">A running loss l(s, x) added to L, when there is one.</param>
    public static torch.Tensor DilationShift(Basis basis, torch.Tensor coefficients, double dilation, double shift,
                                             Func<double, torch.Tensor, torch.Tensor> field, Func<torch.Tensor> weights,
                                             torch.Tensor x0, torch.Tensor terminalGradient, double tolerance = 1e-8,
                                             Solver? solver = null, StepSize? stepSize = null,
                                             Func<double, torch.Tensor, torch.Tensor>? integralLoss = null)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(weights);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return Core.InfiniteDimensionalGradient.dilationShiftConverged(basis.Value, coefficients, dilation, shift, tolerance,
            FuncConvert.FromFunc(field), FuncConvert.FromFunc(weights), x0, terminalGradient, Loss(integralLoss),
            tableau, control);
    }

    /// <summary>
    /// Corollary 2: for piecewise-constant parameters θ_i on [s_i, s_{i+1}] (a <see cref="StackedLinear"/>),
    /// dℓ/dθ_i = ∫ over the interval of δℓ/δθ(s), each by Gauss–Legendre quadrature doubled until two results agree to
    /// <paramref name="tolerance"/>, the adjoint carried backward across the partition points; shape [p, n_θ].
    /// </summary>
    /// <param name="fieldFor">For interval i, its field f_i(s, x) (as given to <see cref="Ode.SolveStacked"/>).</param>
    /// <param name="weights">The θ_i the last evaluation used (e.g. <see cref="StackedLinear.LastWeights"/>).</param>
    /// <param name="partition">The depths s_0 &lt; … &lt; s_p.</param>
    /// <param name="x0">The initial state.</param>
    /// <param name="terminalGradient">∂L/∂x(s_p).</param>
    /// <param name="tolerance">Agreement of successive quadratures.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    /// <param name="integralLoss">A running loss l(s, x) added to L, when there is one.</param>
    public static torch.Tensor Stacked(Func<int, Func<double, torch.Tensor, torch.Tensor>> fieldFor, Func<torch.Tensor> weights,
                                       double[] partition, torch.Tensor x0, torch.Tensor terminalGradient, double tolerance = 1e-8,
                                       Solver? solver = null, StepSize? stepSize = null,
                                       Func<double, torch.Tensor, torch.Tensor>? integralLoss = null)
    {
        ArgumentNullException.ThrowIfNull(fieldFor);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(partition);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return Core.InfiniteDimensionalGradient.stacked(Ode.StackedFields(fieldFor), FuncConvert.FromFunc(weights), partition, x0,
            terminalGradient, Loss(integralLoss), tolerance,
            tableau, control);
    }

    /// <summary>
    /// The closed form for the diagonal linear Galerkin field f(s, z) = θ(s) ⊙ z with θ(s) = α ψ(s): z(S) =
    /// z(0) ⊙ exp(α Ψ(S)), Ψ_j(S) = ∫_0^S ψ_j. A reference the numerical gradients are checked against.
    /// </summary>
    /// <param name="basis">The basis ψ on [0, S].</param>
    /// <param name="alpha">The coefficients α, [n, m].</param>
    /// <param name="z0">The initial states, [batch, n].</param>
    public static torch.Tensor DiagonalLinearSolution(Basis basis, torch.Tensor alpha, torch.Tensor z0)
    {
        ArgumentNullException.ThrowIfNull(basis);
        return Core.SpectralClosedForm.diagonalLinearSolution(basis.Value, alpha, z0);
    }

    /// <summary>
    /// dL/dα in closed form for the diagonal linear Galerkin field (Corollary 1 exactly: δL/δθ(s) is constant in s),
    /// given ∂L/∂z(S): Σ_batch (∂L/∂z(S) ⊙ z(S)) Ψ(S)ᵀ, shape [n, m].
    /// </summary>
    /// <param name="basis">The basis ψ on [0, S].</param>
    /// <param name="alpha">The coefficients α, [n, m].</param>
    /// <param name="z0">The initial states, [batch, n].</param>
    /// <param name="terminalGradient">∂L/∂z(S), [batch, n].</param>
    public static torch.Tensor DiagonalLinearGradient(Basis basis, torch.Tensor alpha, torch.Tensor z0, torch.Tensor terminalGradient)
    {
        ArgumentNullException.ThrowIfNull(basis);
        return Core.SpectralClosedForm.diagonalLinearGradient(basis.Value, alpha, z0, terminalGradient);
    }

    static FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>> Loss(Func<double, torch.Tensor, torch.Tensor>? loss) =>
        loss is null ? FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.None
                     : FSharpOption<FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>>.Some(FuncConvert.FromFunc(loss));
}
