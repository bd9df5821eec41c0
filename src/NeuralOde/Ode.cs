using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.FSharp.Core;
using NeuralOde.Core;
using TorchSharp;
using static TorchSharp.torch.nn;
using CoreSensitivity = NeuralOde.Core.Sensitivity;

namespace NeuralOde;

/// <summary>Solving dx/dt = f(t, x).</summary>
public static partial class Ode
{
    /// <summary>
    /// Solves dx/dt = f(t, x), x(times[0]) = x0, and returns x at every time of <paramref name="times"/>
    /// (strictly increasing, or strictly decreasing to integrate backward). Output times are served by dense output,
    /// never by forcing steps. Gradients flow by autograd through the solver when x0 or tensors captured by f require
    /// grad. The solution is on x0's device with x0's dtype.
    /// </summary>
    /// <param name="vectorField">f(t, x): returns dx/dt with x's shape, dtype and device.</param>
    /// <param name="x0">Initial state, a floating-point tensor of any shape (batch dimensions included).</param>
    /// <param name="times">Output times; the first is the start, the last the end.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> with its defaults when null.</param>
    /// <param name="sensitivity">How gradients are computed; <see cref="Sensitivities.Autograd"/> when null.</param>
    /// <param name="parameters">The tensors f depends on, for adjoint sensitivities (e.g. a module's parameters()).</param>
    /// <param name="integralLoss">A running loss l(t, x) (a 0-dim tensor); its integral over the span is returned as
    /// <see cref="OdeSolution.Integral"/> and differentiated like the states.</param>
    /// <param name="timeTensor">The output times as a 1-D tensor requiring grad, to get dL/dtimes (adjoint only);
    /// when given, it replaces <paramref name="times"/>, which may then be null.</param>
    /// <exception cref="ArgumentException">A bad time grid, tolerance or initial state; the message names it.</exception>
    /// <exception cref="OdeSolveException">The solve failed part-way; <see cref="OdeSolveException.Time"/> says where.</exception>
    public static OdeSolution Solve(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[]? times,
                                    Solver? solver = null, StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                    IEnumerable<torch.Tensor>? parameters = null,
                                    Func<double, torch.Tensor, torch.Tensor>? integralLoss = null,
                                    torch.Tensor? timeTensor = null)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        ArgumentNullException.ThrowIfNull(x0);
        CheckTimesAndParameters(times, timeTensor, sensitivity, parameters);
        var f = FuncConvert.FromFunc<double, torch.Tensor, torch.Tensor>(vectorField);
        var problem = OdeProblemModule.create(f, x0, times ?? TimesOf(timeTensor!));
        return SolveFuncProblem(problem, solver, stepSize, sensitivity, parameters, integralLoss, timeTensor);
    }

    /// <summary>The output times are given one way or the other; an adjoint of a Func field is told its tensors.</summary>
    static void CheckTimesAndParameters(double[]? times, torch.Tensor? timeTensor, Sensitivity? sensitivity, IEnumerable<torch.Tensor>? parameters)
    {
        if (times is null && timeTensor is null) throw new ArgumentNullException(nameof(times), "Give the output times, as an array or as a time tensor.");
        if (parameters is null && sensitivity is not null && sensitivity.Value.Tag != CoreSensitivity.Tags.Autograd)
            throw new ArgumentNullException(nameof(parameters),
                "An adjoint sensitivity computes gradients only for the tensors in `parameters` (a Func field hides what it " +
                "uses): pass the field's tensors (e.g. module.parameters()), an empty list when only dL/dx0 is wanted, or " +
                "call the overload that takes the module.");
    }

    /// <summary>Solves a Func field's problem with <c>Ode.Solve</c>'s optional arguments.</summary>
    static OdeSolution SolveFuncProblem(Core.OdeProblem problem, Solver? solver, StepSize? stepSize, Sensitivity? sensitivity,
                                        IEnumerable<torch.Tensor>? parameters, Func<double, torch.Tensor, torch.Tensor>? integralLoss,
                                        torch.Tensor? timeTensor)
    {
        if (parameters is not null) problem = OdeProblemModule.withParameters(parameters, problem);
        if (integralLoss is not null) problem = OdeProblemModule.withIntegralLoss(FuncConvert.FromFunc(integralLoss), problem);
        if (timeTensor is not null) problem = OdeProblemModule.withTimeTensor(timeTensor, problem);
        var (method, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        var how = (sensitivity ?? Sensitivities.Autograd()).Value;
        return new OdeSolution(Core.Ode.solveWith(how, problem, method, control));
    }

    /// <summary>
    /// Solves dx/dt = f(x) for a module f (like <see cref="NeuralOdeBlock"/>'s field: depth-aware layers are told
    /// the time), with every sensitivity finding the module's parameters itself — so an adjoint's gradients reach them
    /// without a <c>parameters:</c> list; and a module the compiled backend recognises runs on it as a
    /// <see cref="NeuralOdeBlock"/> does (<paramref name="backend"/>; the solution's statistics say which ran).
    /// Otherwise as the overload that takes a function.
    /// </summary>
    public static OdeSolution Solve(Module<torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[]? times,
                                    Solver? solver = null, StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                    Func<double, torch.Tensor, torch.Tensor>? integralLoss = null,
                                    torch.Tensor? timeTensor = null, FieldBackend backend = FieldBackend.Auto)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        ArgumentNullException.ThrowIfNull(x0);
        if (times is null && timeTensor is null) throw new ArgumentNullException(nameof(times), "Give the output times, as an array or as a time tensor.");
        var grid = times ?? TimesOf(timeTensor!);
        var problem = Core.FieldBackend.problemOf(vectorField, x0, grid, backend.ToCore());
        if (integralLoss is not null) problem = OdeProblemModule.withIntegralLoss(FuncConvert.FromFunc(integralLoss), problem);
        if (timeTensor is not null) problem = OdeProblemModule.withTimeTensor(timeTensor, problem);
        var (method, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        var how = (sensitivity ?? Sensitivities.Autograd()).Value;
        return new OdeSolution(Core.Ode.solveWith(how, problem, method, control));
    }

    /// <summary>The problem of a Func field on the output times, its arguments checked by name.</summary>
    static Core.OdeProblem ProblemOf(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[] times)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(times);
        return OdeProblemModule.create(FuncConvert.FromFunc<double, torch.Tensor, torch.Tensor>(vectorField), x0, times);
    }

    /// <summary>
    /// Solves like <c>Ode.Solve</c> (gradients by autograd), but a failure part-way — step budget, step-size
    /// underflow, NaN or Inf, a field returning the wrong shape — does not throw (diffrax's <c>throw=False</c>): the
    /// solution holds the outputs reached before it, and <see cref="OdeSolution.Succeeded"/>,
    /// <see cref="OdeSolution.Failure"/> and <see cref="OdeSolution.FailureTime"/> say whether, why and where it stopped.
    /// Bad arguments still throw.
    /// </summary>
    public static OdeSolution TrySolve(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[] times,
                                       Solver? solver = null, StepSize? stepSize = null,
                                       Func<double, torch.Tensor, torch.Tensor>? integralLoss = null)
    {
        var problem = ProblemOf(vectorField, x0, times);
        if (integralLoss is not null) problem = OdeProblemModule.withIntegralLoss(FuncConvert.FromFunc(integralLoss), problem);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return new OdeSolution(Core.Ode.trySolve(problem, tableau, control));
    }

    /// <summary>
    /// Solves a batch like <see cref="TrySolve"/> with a status per row (diffrax under vmap, SciML's ensembles): a
    /// failure part-way is attributed to the rows (along x0's first dimension) whose state went NaN or Inf, or whose
    /// error drove the step size to underflow; those are marked failed with the failure and its time, and the other
    /// rows are solved again without them, until a solve succeeds. Every solved row then holds exactly what a solve
    /// of the solved rows alone gives; a failed row's states are NaN after its failure. Gradients by autograd.
    /// </summary>
    /// <param name="vectorField">f(t, x) on a batch: rows must not interact (each row's derivative depends on that row).</param>
    /// <param name="x0">The initial states [N, ...].</param>
    /// <param name="times">Output times.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    public static RowsSolution TrySolveRows(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[] times,
                                            Solver? solver = null, StepSize? stepSize = null)
    {
        var problem = ProblemOf(vectorField, x0, times);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return new RowsSolution(Core.Rows.trySolve(problem, tableau, control));
    }

    /// <summary>
    /// Solves every sample over its own span like <see cref="SolveSpans"/> (gradients by autograd), with a status per
    /// sample as <see cref="TrySolveRows"/>: a sample that blows up or drives the step size to underflow is marked
    /// failed and the others are solved again without it.
    /// </summary>
    /// <param name="vectorField">f(t, x) with t of shape [N]: returns dx/dt with x's shape.</param>
    /// <param name="x0">Initial states [N, ...].</param>
    /// <param name="t0">Start times [N].</param>
    /// <param name="t1">End times [N].</param>
    /// <param name="fractions">Output fractions of every span, from 0 to 1; {0, 1} when null.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control in τ; <see cref="StepSize.Adaptive"/> by default.</param>
    public static RowsSolution TrySolveSpans(Func<torch.Tensor, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0,
                                             torch.Tensor t0, torch.Tensor t1, double[]? fractions = null,
                                             Solver? solver = null, StepSize? stepSize = null)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        var f = FuncConvert.FromFunc<torch.Tensor, torch.Tensor, torch.Tensor>(vectorField);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return new RowsSolution(Core.Spans.trySolveRows(f, x0, t0, t1, fractions ?? new[] { 0.0, 1.0 }, tableau, control));
    }

    /// <summary>
    /// Solves every sample of a batch over its own span [t0_i, t1_i] in one solve (time rescaled per sample to
    /// τ ∈ [0, 1]), and returns the states at the <paramref name="fractions"/> of each span, shape
    /// [fractions.Length, ...x0.shape]. The field gets one time per sample, a tensor [N]. Gradients reach x0,
    /// <paramref name="t0"/>, <paramref name="t1"/> (the end-time gradient) and the field's tensors by the sensitivity.
    /// </summary>
    /// <param name="vectorField">f(t, x) with t of shape [N]: returns dx/dt with x's shape.</param>
    /// <param name="x0">Initial states [N, ...].</param>
    /// <param name="t0">Start times [N].</param>
    /// <param name="t1">End times [N] (t1_i = t0_i leaves sample i at x0_i; t1_i &lt; t0_i integrates it backward).</param>
    /// <param name="fractions">Output fractions of every span, from 0 to 1; {0, 1} when null.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control in τ; <see cref="StepSize.Adaptive"/> by default.</param>
    /// <param name="sensitivity">How gradients are computed; autograd by default.</param>
    /// <param name="parameters">The tensors f depends on, required by adjoint sensitivities (an empty list when
    /// only dL/dx0, dL/dt0 and dL/dt1 are wanted).</param>
    /// <exception cref="ArgumentNullException">An adjoint sensitivity without <paramref name="parameters"/>: its
    /// gradients would silently miss the tensors the field uses.</exception>
    public static OdeSolution SolveSpans(Func<torch.Tensor, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0,
                                         torch.Tensor t0, torch.Tensor t1, double[]? fractions = null,
                                         Solver? solver = null, StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                         IEnumerable<torch.Tensor>? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        if (parameters is null && sensitivity is not null && sensitivity.Value.Tag != CoreSensitivity.Tags.Autograd)
            throw new ArgumentNullException(nameof(parameters),
                "An adjoint sensitivity computes gradients only for the tensors in `parameters` (a Func field hides what it " +
                "uses): pass the field's tensors (e.g. module.parameters()), or an empty list when only dL/dx0, dL/dt0 and " +
                "dL/dt1 are wanted.");
        var f = FuncConvert.FromFunc<torch.Tensor, torch.Tensor, torch.Tensor>(vectorField);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return new OdeSolution(Core.Spans.solve(f, x0, t0, t1, fractions ?? new[] { 0.0, 1.0 },
            parameters ?? Enumerable.Empty<torch.Tensor>(), (sensitivity ?? Sensitivities.Autograd()).Value,
            tableau, control));
    }

    /// <summary>
    /// Solves dx/dt = f(t, x) by autograd and keeps every accepted step, so that the solution can be evaluated at any
    /// time of the span afterwards (<see cref="DenseSolution.Evaluate(double)"/>) by the solver's dense output — its
    /// continuous extension (Dopri5, Tsit5, Dopri8, Bosh3) or cubic Hermite interpolation.
    /// </summary>
    /// <param name="vectorField">f(t, x): returns dx/dt with x's shape.</param>
    /// <param name="x0">The initial state.</param>
    /// <param name="times">Output times for <see cref="DenseSolution.Solution"/>; the span is from the first to the last.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    public static DenseSolution SolveDense(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[] times,
                                           Solver? solver = null, StepSize? stepSize = null)
    {
        var problem = ProblemOf(vectorField, x0, times);
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        var (solution, trajectory) = Core.Ode.solveDense(problem, tableau, control).ToValueTuple();
        return new DenseSolution(solution, trajectory);
    }

    /// <summary>
    /// Stacked Neural ODEs (Massaroli et al. 2020, Corollary 2's setting): p Neural ODEs in sequence,
    /// z(s_{i+1}) = z(s_i) + ∫ f_i(τ, z) dτ over [s_i, s_{i+1}], each piece solved on its own interval so that no step
    /// straddles a jump of the parameters (e.g. a <see cref="StackedLinear"/> asked for interval i). Returns the
    /// states at the partition points, [p + 1, ...x0.shape], differentiable by the sensitivity.
    /// </summary>
    /// <param name="fieldFor">For interval i, its field f_i(s, x).</param>
    /// <param name="partition">The depths s_0 &lt; s_1 &lt; … &lt; s_p (or decreasing).</param>
    /// <param name="x0">The initial state.</param>
    /// <param name="solver">The method; <see cref="Solvers.Dopri5"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> by default.</param>
    /// <param name="sensitivity">How gradients are computed; autograd by default.</param>
    /// <param name="parameters">The tensors the fields use, required by adjoint sensitivities (e.g. the layer's parameters()).</param>
    public static torch.Tensor SolveStacked(Func<int, Func<double, torch.Tensor, torch.Tensor>> fieldFor, double[] partition, torch.Tensor x0,
                                            Solver? solver = null, StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                            IEnumerable<torch.Tensor>? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(fieldFor);
        ArgumentNullException.ThrowIfNull(partition);
        ArgumentNullException.ThrowIfNull(x0);
        if (parameters is null && sensitivity is not null && sensitivity.Value.Tag != CoreSensitivity.Tags.Autograd)
            throw new ArgumentNullException(nameof(parameters),
                "An adjoint sensitivity computes gradients only for the tensors in `parameters`: pass the fields' tensors (e.g. layer.parameters()), or an empty list when only dL/dx0 is wanted.");
        var (tableau, control) = Method.Of(solver, stepSize, StepSize.Adaptive());
        return Core.Stacked.solve(StackedFields(fieldFor), partition, x0, parameters ?? Enumerable.Empty<torch.Tensor>(),
            (sensitivity ?? Sensitivities.Autograd()).Value, tableau, control);
    }

    internal static FSharpFunc<int, FSharpFunc<double, FSharpFunc<torch.Tensor, torch.Tensor>>> StackedFields(Func<int, Func<double, torch.Tensor, torch.Tensor>> fieldFor) =>
        FuncConvert.FromFunc((int i) => FuncConvert.FromFunc(fieldFor(i) ?? throw new ArgumentException($"fieldFor({i}) returned null.", nameof(fieldFor))));

    /// <summary>
    /// <c>loss.backward()</c>, raising an adjoint's failure as itself. When a backward solve of an adjoint
    /// sensitivity fails (step budget, step-size underflow, NaN or Inf, an exception from the vector field), the
    /// failure cannot travel through libtorch's engine, and <c>loss.backward()</c> raises an
    /// <see cref="System.Runtime.InteropServices.ExternalException"/> about an invalid gradient instead. This method
    /// raises the backward solve's own exception, with libtorch's as its inner exception.
    /// </summary>
    /// <param name="loss">The scalar to differentiate.</param>
    /// <exception cref="OdeSolveException">A backward solve failed; <see cref="OdeSolveException.Time"/> says where.</exception>
    /// <exception cref="InvalidOperationException">The backward pass failed otherwise (the inner exception says how).</exception>
    public static void Backward(torch.Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        Core.Ode.backward(loss);
    }

    /// <summary>
    /// Runs <paramref name="action"/> with <paramref name="cancellationToken"/> reaching every solve inside it: each
    /// step of a forward solve, and of an adjoint's backward solves, checks it and raises
    /// <see cref="OperationCanceledException"/> (with the time) once it is cancelled.
    /// </summary>
    public static T WithCancellation<T>(System.Threading.CancellationToken cancellationToken, Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        return Core.Cancellation.within(cancellationToken, FuncConvert.FromFunc(action));
    }

    /// <summary>The values of a time tensor on the host; the intermediate tensors are freed here.</summary>
    private static double[] TimesOf(torch.Tensor timeTensor)
    {
        using var detached = timeTensor.detach();
        using var onHost = detached.cpu();
        using var asDouble = onHost.to_type(torch.float64);
        return asDouble.data<double>().ToArray();
    }
}
