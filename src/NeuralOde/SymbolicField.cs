using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using NeuralOde.Core;
using TorchSharp;
using static TorchSharp.torch.nn;
using CoreSymbolic = NeuralOde.Core.Symbolic;

namespace NeuralOde;

/// <summary>
/// A vector field f(s, z; θ) written as a <see cref="SymbolicExpression"/>, as a module whose parameters are the
/// parameter variables (so optimisers and every sensitivity see them). Its derivatives are derived once and compiled:
/// <see cref="Solve"/> hands the adjoint sensitivities the symbolic vector–Jacobian products aᵀ∂f/∂z and aᵀ∂f/∂θ in
/// place of autograd's, and a <see cref="ContinuousNormalizingFlow"/> built on <see cref="Module"/> with the exact
/// trace takes tr(∂f/∂z) in closed form (about one forward pass instead of d backward passes).
/// </summary>
public sealed class SymbolicField : IDisposable
{
    readonly CoreSymbolic.SymbolicField _field;

    SymbolicField(CoreSymbolic.SymbolicField field) => _field = field;

    /// <summary>Builds the field.</summary>
    /// <param name="field">f, over the state variable, the parameters and optionally the depth and the data.</param>
    /// <param name="state">The state's variable name.</param>
    /// <param name="parameters">Each parameter variable's initial value (copied into a parameter of the module).</param>
    /// <param name="depth">The depth's scalar variable, when the field uses one.</param>
    /// <param name="data">The data's variable (a data-controlled field dz/ds = f(s, x, z)), when the field uses one.</param>
    /// <exception cref="ArgumentException">The field does not use the state or a parameter, or uses a variable that is
    /// neither the state, a parameter, the depth nor the data.</exception>
    public static SymbolicField Create(SymbolicExpression field, string state, IReadOnlyDictionary<string, torch.Tensor> parameters,
                                       string? depth = null, string? data = null)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(parameters);
        var bound = ListModule.OfSeq(parameters.Select(kv => Tuple.Create(kv.Key, kv.Value)));
        return new(CoreSymbolic.SymbolicFieldModule.create(field.Value, state, bound, Option(depth), Option(data)));
    }

    /// <summary>The field as a module: for <see cref="Ode.Solve(Module{torch.Tensor, torch.Tensor}, torch.Tensor, double[], Solver?, StepSize?, Sensitivity?, Func{double, torch.Tensor, torch.Tensor}?, torch.Tensor?, FieldBackend)"/>,
    /// <see cref="NeuralOdeBlock"/> and <see cref="ContinuousNormalizingFlow"/> (which then takes the closed-form exact trace).</summary>
    public Module<torch.Tensor, torch.Tensor> Module => _field;

    /// <summary>The module's parameters, one per parameter variable, in the order given.</summary>
    public IReadOnlyList<torch.Tensor> Parameters => _field.Parameters;

    /// <summary>The parameter variables' names, in the order of <see cref="Parameters"/>.</summary>
    public IReadOnlyList<string> ParameterNames => _field.ParameterNames.ToList();

    /// <summary>f(s, z), with the data when the field reads it.</summary>
    /// <param name="s">The depth.</param>
    /// <param name="z">The state.</param>
    /// <param name="data">The data x, when the field reads it.</param>
    /// <exception cref="ArgumentException">A variable the field needs is missing (the data) or bound with the wrong shape.</exception>
    public torch.Tensor Evaluate(double s, torch.Tensor z, torch.Tensor? data = null)
    {
        ArgumentNullException.ThrowIfNull(z);
        return _field.Evaluate(s, z, data!);
    }

    /// <summary>aᵀ∂f/∂z and aᵀ∂f/∂θ for each parameter (in the order of <see cref="Parameters"/>), from the compiled
    /// symbolic derivatives, without an autograd graph.</summary>
    /// <param name="s">The depth.</param>
    /// <param name="z">The state.</param>
    /// <param name="a">The cotangent (the adjoint), shaped like f(s, z).</param>
    /// <param name="data">The data x, when the field reads it.</param>
    public (torch.Tensor State, torch.Tensor[] Parameters) VectorJacobianProduct(double s, torch.Tensor z, torch.Tensor a, torch.Tensor? data = null)
    {
        ArgumentNullException.ThrowIfNull(z);
        ArgumentNullException.ThrowIfNull(a);
        var (gz, gTheta) = _field.VectorJacobianProduct(s, z, a, data!);
        return (gz, gTheta);
    }

    /// <summary>The Jacobian ∂f/∂z of one row as chains of factors, as text (what the closed-form trace takes the
    /// trace of), e.g. <c>tr(w1 diag(1 - tanh(z @ w1 + b)^2) w2)</c>.</summary>
    /// <exception cref="NotSupportedException">The field's rows depend on other rows of the state.</exception>
    public string JacobianText => CoreSymbolic.JacobianTrace.text(_field.Jacobian);

    /// <summary>
    /// Solves dz/ds = f(s, z) from <paramref name="x0"/> and returns z at every time of <paramref name="times"/>, with
    /// gradients to x0 and <see cref="Parameters"/>. Under an adjoint sensitivity the backward pass uses the compiled
    /// symbolic vector–Jacobian products (no autograd graph of f); a running loss is still differentiated by autograd.
    /// </summary>
    /// <param name="x0">The initial state.</param>
    /// <param name="times">Output times; the first is the start.</param>
    /// <param name="data">The data x, when the field reads it.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    /// <param name="sensitivity">How gradients are computed; <see cref="Sensitivities.Adjoint"/> by default.</param>
    /// <param name="integralLoss">A running loss l(s, z) whose integral is returned as <see cref="OdeSolution.Integral"/>.</param>
    /// <exception cref="ArgumentException">The data requires grad (the compiled products give gradients to the state and
    /// the parameters only), or a bad time grid or state.</exception>
    public OdeSolution Solve(torch.Tensor x0, double[] times, torch.Tensor? data = null, Solver? solver = null, StepSize? stepSize = null,
                             Sensitivity? sensitivity = null, Func<double, torch.Tensor, torch.Tensor>? integralLoss = null)
    {
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(times);
        var problem = _field.Problem(x0, times, data!);
        if (integralLoss is not null) problem = OdeProblemModule.withIntegralLoss(FuncConvert.FromFunc(integralLoss), problem);
        var (method, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        var how = (sensitivity ?? Sensitivities.Adjoint()).Value;
        return new OdeSolution(Core.Ode.solveWith(how, problem, method, control));
    }

    /// <summary>Frees the module's parameters.</summary>
    public void Dispose() => _field.Dispose();

    /// <inheritdoc />
    public override string ToString() => $"SymbolicField(d{_field.State}/ds = {CoreSymbolic.Render.text(_field.Expression)})";

    static FSharpOption<string> Option(string? name) => name is null ? FSharpOption<string>.None : FSharpOption<string>.Some(name);
}
