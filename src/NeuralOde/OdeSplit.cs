using System;
using System.Collections.Generic;
using Microsoft.FSharp.Core;
using NeuralOde.Core;
using TorchSharp;

namespace NeuralOde;

public static partial class Ode
{
    /// <summary>
    /// Solves a split problem dx/dt = f_E(t, x) + f_I(t, x), x(times[0]) = x0 (diffrax's
    /// <c>MultiTerm(ODETerm(explicit), ODETerm(implicit))</c>, SciML's <c>SplitODEProblem</c>): the IMEX solvers
    /// <see cref="Solvers.KenCarp3"/>, <see cref="Solvers.KenCarp4"/> and <see cref="Solvers.KenCarp5"/> treat the
    /// non-stiff part explicitly and solve only the stiff part by Newton iterations on its Jacobian (a Jacobian given
    /// to the solver is the stiff part's); every other solver solves the sum. Each part's output is checked as a
    /// field's is (shape, dtype, device; a failure named with the part and the time). Otherwise as
    /// <see cref="Solve(Func{double, torch.Tensor, torch.Tensor}, torch.Tensor, double[], Solver, StepSize, Sensitivity, IEnumerable{torch.Tensor}, Func{double, torch.Tensor, torch.Tensor}, torch.Tensor)"/>;
    /// the solution's FunctionEvaluations count an evaluation of the sum as one and each evaluation of a part the
    /// IMEX stages make as one.
    /// </summary>
    /// <param name="nonStiff">f_E(t, x), the part treated explicitly (e.g. advection, a reaction).</param>
    /// <param name="stiff">f_I(t, x), the part treated implicitly (e.g. diffusion).</param>
    /// <param name="x0">Initial state, a floating-point tensor of any shape.</param>
    /// <param name="times">Output times; the first is the start, the last the end.</param>
    /// <param name="solver">The method; <see cref="Solvers.KenCarp4"/> by default.</param>
    /// <param name="stepSize">Step control; <see cref="StepSize.Adaptive"/> with its defaults when null.</param>
    /// <param name="sensitivity">How gradients are computed; <see cref="Sensitivities.Autograd"/> when null. The adjoints
    /// solve the sum, forward and backward (a KenCarp method then treats it as one stiff field).</param>
    /// <param name="parameters">The tensors the parts depend on, for adjoint sensitivities.</param>
    /// <param name="integralLoss">A running loss l(t, x) whose integral is returned (the IMEX solvers then solve the
    /// sum as one stiff field).</param>
    /// <param name="timeTensor">The output times as a 1-D tensor (adjoint only); when given, it replaces <paramref name="times"/>.</param>
    /// <exception cref="ArgumentException">A bad time grid, tolerance or initial state; the message names it.</exception>
    /// <exception cref="OdeSolveException">The solve failed part-way; <see cref="OdeSolveException.Time"/> says where.</exception>
    public static OdeSolution SolveSplit(Func<double, torch.Tensor, torch.Tensor> nonStiff, Func<double, torch.Tensor, torch.Tensor> stiff,
                                         torch.Tensor x0, double[]? times,
                                         Solver? solver = null, StepSize? stepSize = null, Sensitivity? sensitivity = null,
                                         IEnumerable<torch.Tensor>? parameters = null,
                                         Func<double, torch.Tensor, torch.Tensor>? integralLoss = null,
                                         torch.Tensor? timeTensor = null)
    {
        ArgumentNullException.ThrowIfNull(nonStiff);
        ArgumentNullException.ThrowIfNull(stiff);
        ArgumentNullException.ThrowIfNull(x0);
        CheckTimesAndParameters(times, timeTensor, sensitivity, parameters);
        var problem = OdeProblemModule.createSplit(
            FuncConvert.FromFunc<double, torch.Tensor, torch.Tensor>(nonStiff),
            FuncConvert.FromFunc<double, torch.Tensor, torch.Tensor>(stiff),
            x0, times ?? TimesOf(timeTensor!));
        return SolveFuncProblem(problem, solver ?? Solvers.KenCarp4(), stepSize, sensitivity, parameters, integralLoss, timeTensor);
    }
}
