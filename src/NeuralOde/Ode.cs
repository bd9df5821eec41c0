using System;
using Microsoft.FSharp.Core;
using NeuralOde.Core;
using TorchSharp;

namespace NeuralOde;

/// <summary>Solving dx/dt = f(t, x).</summary>
public static class Ode
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
    /// <exception cref="ArgumentException">A bad time grid, tolerance or initial state; the message names it.</exception>
    /// <exception cref="OdeSolveException">The solve failed part-way; <see cref="OdeSolveException.Time"/> says where.</exception>
    public static OdeSolution Solve(Func<double, torch.Tensor, torch.Tensor> vectorField, torch.Tensor x0, double[] times,
                                    Solver? solver = null, StepSize? stepSize = null)
    {
        ArgumentNullException.ThrowIfNull(vectorField);
        var f = FuncConvert.FromFunc<double, torch.Tensor, torch.Tensor>(vectorField);
        var problem = OdeProblemModule.create(f, x0, times);
        var method = (solver ?? Solvers.Dopri5()).Tableau;
        var control = (stepSize ?? StepSize.Adaptive()).Control;
        return new OdeSolution(Core.Ode.solve(problem, method, control));
    }
}
