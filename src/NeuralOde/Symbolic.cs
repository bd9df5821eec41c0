using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using TorchSharp;
using CoreExpr = NeuralOde.Core.Symbolic.Expr;
using CoreSymbolic = NeuralOde.Core.Symbolic;

namespace NeuralOde;

/// <summary>
/// A symbolic expression over named tensors: a vector field or loss written with C# operators and the functions of
/// <see cref="Symbolic"/>, differentiated exactly (<see cref="Vjp"/>, <see cref="Jvp"/>), evaluated on tensors and
/// printed as LaTeX or text. <c>*</c> and <c>/</c> are elementwise; <see cref="Symbolic.MatMul"/> is the matrix product.
/// </summary>
public sealed class SymbolicExpression
{
    internal SymbolicExpression(CoreExpr value) => Value = value;

    internal CoreExpr Value { get; }

    /// <summary>a + b.</summary>
    public static SymbolicExpression operator +(SymbolicExpression a, SymbolicExpression b) => new(CoreExpr.NewAdd(a.Value, b.Value));
    /// <summary>a − b.</summary>
    public static SymbolicExpression operator -(SymbolicExpression a, SymbolicExpression b) => new(CoreExpr.NewSub(a.Value, b.Value));
    /// <summary>a ⊙ b, elementwise.</summary>
    public static SymbolicExpression operator *(SymbolicExpression a, SymbolicExpression b) => new(CoreExpr.NewMul(a.Value, b.Value));
    /// <summary>a / b, elementwise.</summary>
    public static SymbolicExpression operator /(SymbolicExpression a, SymbolicExpression b) => new(CoreExpr.NewDiv(a.Value, b.Value));
    /// <summary>−a.</summary>
    public static SymbolicExpression operator -(SymbolicExpression a) => new(CoreExpr.NewNeg(a.Value));
    /// <summary>A number as a constant expression.</summary>
    public static implicit operator SymbolicExpression(double c) => new(CoreExpr.NewConst(c));

    /// <summary>The variables the expression uses, in order of first use.</summary>
    public IReadOnlyList<string> Variables => CoreSymbolic.ExprModule.variables(Value).Select(v => v.Item1).ToList();

    /// <summary>
    /// dᵀ ∂e/∂v for every variable v, with <paramref name="cotangent"/> d shaped like this expression: one simplified
    /// expression per variable, shaped like that variable.
    /// </summary>
    public IReadOnlyDictionary<string, SymbolicExpression> Vjp(SymbolicExpression cotangent)
    {
        ArgumentNullException.ThrowIfNull(cotangent);
        return CoreSymbolic.Derivative.vjp(Value, cotangent.Value).ToDictionary(kv => kv.Key, kv => new SymbolicExpression(kv.Value));
    }

    /// <summary>The directional derivative Σ_v ∂e/∂v · t_v for the given tangents (shaped like their variables).</summary>
    public SymbolicExpression Jvp(IReadOnlyDictionary<string, SymbolicExpression> tangents)
    {
        ArgumentNullException.ThrowIfNull(tangents);
        var map = MapModule.OfSeq(tangents.Select(kv => Tuple.Create(kv.Key, kv.Value.Value)));
        return new(CoreSymbolic.Derivative.jvp(Value, map));
    }

    /// <summary>The value with each variable bound by name (a scalar variable to a 0-dim tensor).</summary>
    /// <exception cref="ArgumentException">A variable is not bound, or a scalar is bound to a tensor that is not 0-dim.</exception>
    public torch.Tensor Evaluate(IReadOnlyDictionary<string, torch.Tensor> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        return CoreSymbolic.Evaluate.evaluate(MapModule.OfSeq(environment.Select(kv => Tuple.Create(kv.Key, kv.Value))), Value);
    }

    /// <summary>The expression in LaTeX.</summary>
    public string ToLatex() => CoreSymbolic.Render.latex(Value);

    /// <summary>The expression as plain text (<c>.*</c> elementwise, <c>@</c> matrix product, <c>'</c> transpose).</summary>
    public override string ToString() => CoreSymbolic.Render.text(Value);
}

/// <summary>Building symbolic expressions: variables, constants and functions.</summary>
public static partial class Symbolic
{
    /// <summary>A tensor variable.</summary>
    public static SymbolicExpression Tensor(string name) => new(CoreSymbolic.ExprModule.tensor(Named(name)));
    /// <summary>A scalar variable (0-dim, broadcast against tensors).</summary>
    public static SymbolicExpression Scalar(string name) => new(CoreSymbolic.ExprModule.scalar(Named(name)));
    /// <summary>tanh.</summary>
    public static SymbolicExpression Tanh(SymbolicExpression a) => new(CoreSymbolic.ExprModule.tanh(a.Value));
    /// <summary>The logistic sigmoid.</summary>
    public static SymbolicExpression Sigmoid(SymbolicExpression a) => new(CoreSymbolic.ExprModule.sigmoid(a.Value));
    /// <summary>log(1 + eˣ).</summary>
    public static SymbolicExpression Softplus(SymbolicExpression a) => new(CoreSymbolic.ExprModule.softplus(a.Value));
    /// <summary>sin.</summary>
    public static SymbolicExpression Sin(SymbolicExpression a) => new(CoreSymbolic.ExprModule.sin(a.Value));
    /// <summary>cos.</summary>
    public static SymbolicExpression Cos(SymbolicExpression a) => new(CoreSymbolic.ExprModule.cos(a.Value));
    /// <summary>eˣ.</summary>
    public static SymbolicExpression Exp(SymbolicExpression a) => new(CoreSymbolic.ExprModule.exp(a.Value));
    /// <summary>The natural logarithm.</summary>
    public static SymbolicExpression Log(SymbolicExpression a) => new(CoreSymbolic.ExprModule.log(a.Value));
    /// <summary>a to a constant power.</summary>
    public static SymbolicExpression Pow(SymbolicExpression a, double p) => new(CoreSymbolic.ExprModule.pow(a.Value, p));
    /// <summary>The matrix product of 2-D operands.</summary>
    public static SymbolicExpression MatMul(SymbolicExpression a, SymbolicExpression b) => new(CoreSymbolic.ExprModule.matmul(a.Value, b.Value));
    /// <summary>The transpose of a 2-D operand.</summary>
    public static SymbolicExpression Transpose(SymbolicExpression a) => new(CoreSymbolic.ExprModule.transpose(a.Value));
    /// <summary>The matrix exponential e^a of a square 2-D operand (differentiated through its Fréchet derivative).</summary>
    public static SymbolicExpression MatrixExp(SymbolicExpression a)
    {
        ArgumentNullException.ThrowIfNull(a);
        return new(CoreSymbolic.ExprModule.matrixExp(a.Value));
    }

    /// <summary>The sum of all elements.</summary>
    public static SymbolicExpression Sum(SymbolicExpression a) => new(CoreSymbolic.ExprModule.sum(a.Value));
    /// <summary>The sum over one axis of an operand of rank 2 or more (the axis is dropped; −1 is the last).</summary>
    /// <exception cref="ArgumentOutOfRangeException">When evaluated: <paramref name="axis"/> lies outside [−rank, rank − 1] of
    /// the operand (the message names sumAxis, the value and the range).</exception>
    public static SymbolicExpression Sum(SymbolicExpression a, int axis)
    {
        ArgumentNullException.ThrowIfNull(a);
        return new(CoreSymbolic.ExprModule.sumAxis(a.Value, axis));
    }

    /// <summary>The operands joined along <paramref name="axis"/> (−1: the last), e.g. a state and data x for a data-controlled field.</summary>
    /// <exception cref="ArgumentException">No operand is given.</exception>
    public static SymbolicExpression Concat(int axis, params SymbolicExpression[] parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Length == 0) throw new ArgumentException("A concatenation needs at least one operand.", nameof(parts));
        return new(CoreSymbolic.ExprModule.concat(ListModule.OfSeq(parts.Select(p => p.Value)), axis));
    }

    /// <summary>ψ_j(s) of a basis (j from 0) at a scalar depth expression.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="j"/> does not index a function of the basis.</exception>
    public static SymbolicExpression Psi(Basis basis, int j, SymbolicExpression s)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(s);
        return new(CoreSymbolic.ExprModule.psi(basis.Value, j, s.Value));
    }

    /// <summary>θ(s) = Σ_j α_j ψ_j(s): a Galerkin parameter from one coefficient expression per basis function.</summary>
    public static SymbolicExpression Galerkin(Basis basis, IEnumerable<SymbolicExpression> coefficients, SymbolicExpression s)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(coefficients);
        ArgumentNullException.ThrowIfNull(s);
        return new(CoreSymbolic.ExprModule.galerkin(basis.Value, ListModule.OfSeq(coefficients.Select(c => c.Value)), s.Value));
    }

    /// <summary>
    /// The closed-form solution z(S) = z(0) ⊙ exp(Σ_j α_j Ψ_j(S)) of dz/ds = θ(s) ⊙ z when <paramref name="field"/> has
    /// that form (θ linear in basis functions of the depth variable, free of the state), else null. Its
    /// <see cref="SymbolicExpression.Vjp"/> is the spectral gradient in the basis integrals.
    /// </summary>
    public static SymbolicExpression? LinearClosedForm(SymbolicExpression field, string state, string depth,
                                                       SymbolicExpression initial, SymbolicExpression horizon)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(initial);
        ArgumentNullException.ThrowIfNull(horizon);
        var solution = CoreSymbolic.ClosedForm.linearSolution(field.Value, state, depth, initial.Value, horizon.Value);
        return FSharpOption<CoreExpr>.get_IsSome(solution) ? new SymbolicExpression(solution.Value) : null;
    }

    static string Named(string name) =>
        string.IsNullOrWhiteSpace(name) ? throw new ArgumentException("A variable needs a name.", nameof(name)) : name;
}

/// <summary>
/// The paper's formulas for a field dz/ds = f(s, z; θ) with an optional running loss l(s, z), derived symbolically:
/// the adjoint system ȧ = −aᵀ∂f/∂z − ∂l/∂z (Proposition 1) and Theorem 1's δL/δθ(s) = aᵀ∂f/∂θ for each parameter.
/// </summary>
public sealed class SymbolicDerivation
{
    readonly CoreSymbolic.Formulas.Derivation _derivation;

    SymbolicDerivation(CoreSymbolic.Formulas.Derivation derivation) => _derivation = derivation;

    /// <summary>Derives the formulas of <paramref name="field"/> for the state variable and the parameters named.</summary>
    /// <exception cref="ArgumentException">The field does not use the state or a parameter.</exception>
    public static SymbolicDerivation Derive(SymbolicExpression field, string state, IEnumerable<string> parameters,
                                            SymbolicExpression? runningLoss = null)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(parameters);
        var loss = runningLoss is null ? FSharpOption<CoreExpr>.None : FSharpOption<CoreExpr>.Some(runningLoss.Value);
        return new(CoreSymbolic.Formulas.derive(field.Value, state, ListModule.OfSeq(parameters), loss));
    }

    /// <summary>The adjoint's variable name (a).</summary>
    public string Adjoint => _derivation.Adjoint;

    /// <summary>da/ds = −aᵀ∂f/∂z − ∂l/∂z, shaped like the state.</summary>
    public SymbolicExpression AdjointDerivative => new(_derivation.AdjointDerivative);

    /// <summary>For each parameter θ, Theorem 1's δL/δθ(s) = aᵀ∂f/∂θ(s), shaped like θ.</summary>
    public IReadOnlyDictionary<string, SymbolicExpression> ParameterIntegrands =>
        _derivation.ParameterIntegrands.ToDictionary(kv => kv.Key, kv => new SymbolicExpression(kv.Value));

    /// <summary>The derivation as LaTeX lines; parameters named in <paramref name="galerkin"/> get Corollary 1's projection.</summary>
    public IReadOnlyList<string> ToLatex(params string[] galerkin) =>
        CoreSymbolic.Formulas.latex(_derivation, ListModule.OfSeq(galerkin ?? Array.Empty<string>())).ToList();

    /// <summary>The derivation as LaTeX lines with Corollary 1's projection for the parameters in
    /// <paramref name="galerkin"/> and Corollary 2's per-interval integral for those in <paramref name="stacked"/>.</summary>
    public IReadOnlyList<string> ToLatex(IEnumerable<string> galerkin, IEnumerable<string> stacked)
    {
        ArgumentNullException.ThrowIfNull(galerkin);
        ArgumentNullException.ThrowIfNull(stacked);
        return CoreSymbolic.Formulas.latexFor(_derivation, ListModule.OfSeq(galerkin), ListModule.OfSeq(stacked)).ToList();
    }

    /// <summary>The derivation as plain-text lines.</summary>
    public IReadOnlyList<string> ToText() => CoreSymbolic.Formulas.text(_derivation).ToList();
}

/// <summary>What <see cref="SymbolicAdjoint.Gradients"/> returns.</summary>
/// <param name="Final">z(S).</param>
/// <param name="Integral">∫ l ds over the span (0 without a running loss).</param>
/// <param name="StateGradient">dL/dz(s0) = a(s0).</param>
/// <param name="ParameterGradients">dL/dθ for each parameter.</param>
public sealed record SymbolicGradients(torch.Tensor Final, double Integral, torch.Tensor StateGradient,
                                       IReadOnlyDictionary<string, torch.Tensor> ParameterGradients);

/// <summary>
/// Gradients by the adjoint method with the adjoint system derived symbolically and evaluated without an autograd
/// graph: for dz/ds = f(s, z; θ) and L = Φ(z(S)) + ∫ l(s, z) ds, z is solved forward, then [z, a, μ] backward with
/// ȧ = −aᵀ∂f/∂z − ∂l/∂z, μ̇ = −aᵀ∂f/∂θ (Proposition 1). The running loss must not depend on θ.
/// </summary>
public static class SymbolicAdjoint
{
    /// <summary>dL/dz(s0) and dL/dθ for the field over <paramref name="state"/> from <paramref name="x0"/> on [start, end].</summary>
    /// <param name="field">f, using the state variable, the parameters and (optionally) the depth variable.</param>
    /// <param name="state">The state's variable name.</param>
    /// <param name="parameters">The parameters' values by variable name (a scalar variable: a 0-dim tensor).</param>
    /// <param name="terminalGradient">z(S) ↦ ∂Φ/∂z(S).</param>
    /// <param name="x0">The initial state.</param>
    /// <param name="start">s0.</param>
    /// <param name="end">S.</param>
    /// <param name="depth">The depth's scalar variable name, when the field or loss uses one.</param>
    /// <param name="runningLoss">l(s, z), when there is one.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    public static SymbolicGradients Gradients(SymbolicExpression field, string state, IReadOnlyDictionary<string, torch.Tensor> parameters,
                                              Func<torch.Tensor, torch.Tensor> terminalGradient, torch.Tensor x0, double start, double end,
                                              string? depth = null, SymbolicExpression? runningLoss = null,
                                              Solver? solver = null, StepSize? stepSize = null)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(terminalGradient);
        ArgumentNullException.ThrowIfNull(x0);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        var r = CoreSymbolic.SymbolicAdjoint.gradients(field.Value, state,
            depth is null ? FSharpOption<string>.None : FSharpOption<string>.Some(depth),
            MapModule.OfSeq(parameters.Select(kv => Tuple.Create(kv.Key, kv.Value))),
            runningLoss is null ? FSharpOption<CoreExpr>.None : FSharpOption<CoreExpr>.Some(runningLoss.Value),
            FuncConvert.FromFunc(terminalGradient), x0, start, end, tableau, control);
        return new(r.Final, r.Integral, r.StateGradient, r.ParameterGradients.ToDictionary(kv => kv.Key, kv => kv.Value));
    }
}
