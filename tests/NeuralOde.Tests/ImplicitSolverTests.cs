using System;
using System.Linq;
using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>The implicit (stiff) solvers from C#: Robertson's reaction with Kvaerno5 and Rodas4 against SciPy's Radau,
/// per-row blocks on a batch and a Jacobian of your own (Kvaerno4, Rosenbrock23), gradients by autograd (Kvaerno5,
/// Rodas4) and by the interpolated adjoint, the stiffness switcher, and the named Newton and singular-matrix
/// failures.</summary>
public class ImplicitSolverTests
{
    static readonly double[] Rates = { 0.04, 3e7, 1e4 };

    /// <summary>Robertson's reaction; rows of a batch do not interact.</summary>
    static torch.Tensor Robertson(double t, torch.Tensor y)
    {
        using var scope = torch.NewDisposeScope();
        var y1 = y.narrow(-1, 0, 1);
        var y2 = y.narrow(-1, 1, 1);
        var y3 = y.narrow(-1, 2, 1);
        var r1 = y1.mul(Rates[0]);
        var r2 = y2.square().mul(Rates[1]);
        var r3 = y2.mul(y3).mul(Rates[2]);
        var d1 = r3.sub(r1);
        var d2 = r1.sub(r3).sub(r2);
        return torch.cat(new[] { d1, d2, r2 }, -1).MoveToOuterDisposeScope();
    }

    /// <summary>∂f/∂y of each row of a batch, [N, 3, 3].</summary>
    static torch.Tensor RobertsonJacobian(double t, torch.Tensor y)
    {
        var v = y.data<double>().ToArray();
        var rows = y.shape[0];
        var j = new double[rows * 9];
        for (var r = 0; r < rows; r++)
        {
            double b = v[3 * r + 1], c = v[3 * r + 2];
            var m = new[]
            {
                -Rates[0], Rates[2] * c, Rates[2] * b,
                Rates[0], -Rates[2] * c - 2 * Rates[1] * b, -Rates[2] * b,
                0.0, 2 * Rates[1] * b, 0.0,
            };
            Array.Copy(m, 0, j, 9 * r, 9);
        }
        return torch.tensor(j).reshape(rows, 3, 3);
    }

    [Fact]
    public void Kvaerno5SolvesRobertsonToRadausValuesInFewSteps()
    {
        using var x0 = torch.tensor(new[] { 1.0, 0.0, 0.0 });
        using var solution = Ode.Solve(Robertson, x0, new[] { 0.0, 100.0 }, Solvers.Kvaerno5(), StepSize.Adaptive(1e-6, 1e-10));
        // SciPy Radau at rtol 1e-12 (tests/NeuralOde.Core.Tests/Implicit/stiff_references.py).
        var reference = new[] { 0.6172348823960814, 6.153591274639731e-06, 0.3827589640126413 };
        var final = solution.Final.data<double>().ToArray();
        for (var i = 0; i < 3; i++)
            Assert.True(Math.Abs(final[i] - reference[i]) < 1e-4 * Math.Abs(reference[i]), $"component {i}: {final[i]} vs {reference[i]}");
        Assert.True(solution.Statistics.AcceptedSteps < 100, $"{solution.Statistics.AcceptedSteps} steps");
        Assert.True(Solvers.Kvaerno5().IsImplicit);
        Assert.Equal("kvaerno5", Solvers.ByName("Kvaerno5").Name);
    }

    [Fact]
    public void RowBlocksAndAnOwnJacobianGiveTheSameSolution()
    {
        using var x0 = torch.tensor(new[] { 1.0, 0.0, 0.0, 0.5, 1e-5, 0.5 }).reshape(2, 3);
        var times = new[] { 0.0, 10.0 };
        using var dense = Ode.Solve(Robertson, x0, times, Solvers.Kvaerno4(), StepSize.Adaptive(1e-8, 1e-12));
        using var blocks = Ode.Solve(Robertson, x0, times, Solvers.Kvaerno4(rowBlocks: true), StepSize.Adaptive(1e-8, 1e-12));
        using var own = Ode.Solve(Robertson, x0, times, Solvers.Kvaerno4(rowBlocks: true, jacobian: RobertsonJacobian), StepSize.Adaptive(1e-8, 1e-12));
        Assert.True(dense.Final.allclose(blocks.Final, 1e-9, 1e-14));
        Assert.True(dense.Final.allclose(own.Final, 1e-6, 1e-12));
    }

    [Fact]
    public void GradientsFlowThroughTheNewtonIterations()
    {
        // dx/dt = −k x (stiff for k = 1000) from x0 = 1: x(T) = exp(−kT), dx(T)/dk = −T exp(−kT).
        using var k = torch.tensor(new[] { 50.0 }).requires_grad_(true);
        using var x0 = torch.tensor(new[] { 1.0 });
        using var solution = Ode.Solve((t, x) => x.mul(k).neg(), x0, new[] { 0.0, 0.1 }, Solvers.Kvaerno5(), StepSize.Adaptive(1e-10, 1e-14));
        solution.Final.sum().backward();
        var expected = -0.1 * Math.Exp(-5.0);
        Assert.True(Math.Abs(k.grad!.ToDouble() - expected) < 1e-5 * Math.Abs(expected), $"{k.grad!.ToDouble()} vs {expected}; x(T) = {solution.Final.ToDouble()} vs {Math.Exp(-5.0)}, {solution.Statistics}");
    }

    [Fact]
    public void TheInterpolatedAdjointTakesAnImplicitSolverForwardAndBackward()
    {
        // The same stiff decay as above, its gradient by the interpolated adjoint with Kvaerno5 both ways.
        using var k = torch.tensor(new[] { 50.0 }).requires_grad_(true);
        using var x0 = torch.tensor(new[] { 1.0 });
        using var solution = Ode.Solve((t, x) => x.mul(k).neg(), x0, new[] { 0.0, 0.1 }, Solvers.Kvaerno5(), StepSize.Adaptive(1e-10, 1e-14),
            Sensitivities.InterpolatedAdjoint(solver: Solvers.Kvaerno5()), parameters: new[] { k });
        using var loss = solution.Final.sum();
        Ode.Backward(loss);
        var expected = -0.1 * Math.Exp(-5.0);
        Assert.True(Math.Abs(k.grad!.ToDouble() - expected) < 1e-5 * Math.Abs(expected), $"{k.grad!.ToDouble()} vs {expected}");
        Assert.True(solution.BackwardStatistics.AcceptedSteps > 0);
    }

    [Fact]
    public void AutoSwitchGoesImplicitOnRobertsonAndStaysExplicitOnANonStiffProblem()
    {
        using var x0 = torch.tensor(new[] { 1.0, 0.0, 0.0 });
        var auto = Solvers.AutoSwitch(Solvers.Tsit5(), Solvers.Kvaerno5());
        Assert.Equal("auto(tsit5, kvaerno5)", auto.Name);
        using var stiff = Ode.Solve(Robertson, x0, new[] { 0.0, 100.0 }, auto, StepSize.Adaptive(1e-6, 1e-10));
        var switched = Assert.Single(stiff.Statistics.Switches);
        Assert.Equal("kvaerno5", switched.Solver);
        Assert.True(switched.Time < 0.1, $"{switched}");
        Assert.True(stiff.Statistics.AcceptedSteps < 500, $"{stiff.Statistics}");

        using var y0 = torch.tensor(new[] { 1.0, 0.0 });
        using var calm = Ode.Solve((t, y) => torch.stack(new[] { y[1], y[0].neg() }), y0, new[] { 0.0, 10.0 }, Solvers.AutoSwitch(), StepSize.Adaptive(1e-8, 1e-10));
        Assert.Empty(calm.Statistics.Switches);
        Assert.Throws<ArgumentException>(() => Solvers.AutoSwitch(Solvers.Kvaerno3(), Solvers.Kvaerno5()));
    }

    [Fact]
    public void ADivergingNewtonIterationIsNamedWithTheTime()
    {
        using var x0 = torch.tensor(new[] { 1.0 });
        // A Jacobian of the wrong sign for dx/dt = −1000 x, with fixed steps: the iteration diverges at once.
        var wrong = Solvers.Kvaerno3(jacobian: (t, y) => torch.tensor(new[] { 1000.0 }).reshape(1, 1));
        var e = Assert.Throws<OdeSolveException>(() => Ode.Solve((t, x) => x.mul(-1000.0), x0, new[] { 0.0, 1.0 }, wrong, StepSize.Fixed(0.1)));
        Assert.Equal(OdeFailure.NewtonDivergence, e.Failure);
        Assert.Equal(0.0, e.Time);
    }

    [Fact]
    public void Rodas4SolvesRobertsonToRadausValuesInFewSteps()
    {
        using var x0 = torch.tensor(new[] { 1.0, 0.0, 0.0 });
        using var solution = Ode.Solve(Robertson, x0, new[] { 0.0, 100.0 }, Solvers.Rodas4(), StepSize.Adaptive(1e-6, 1e-10));
        // SciPy Radau at rtol 1e-12 (tests/NeuralOde.Core.Tests/Implicit/stiff_references.py).
        var reference = new[] { 0.6172348823960814, 6.153591274639731e-06, 0.3827589640126413 };
        var final = solution.Final.data<double>().ToArray();
        for (var i = 0; i < 3; i++)
            Assert.True(Math.Abs(final[i] - reference[i]) < 1e-4 * Math.Abs(reference[i]), $"component {i}: {final[i]} vs {reference[i]}");
        Assert.True(solution.Statistics.AcceptedSteps < 200, $"{solution.Statistics.AcceptedSteps} steps");
        Assert.True(Solvers.Rodas4().IsImplicit && Solvers.Rodas4().IsRosenbrock && !Solvers.Kvaerno5().IsRosenbrock);
        Assert.Equal("rosenbrock23", Solvers.ByName("Rosenbrock23").Name);
    }

    [Fact]
    public void Rosenbrock23WithRowBlocksAndAnOwnJacobianGivesTheDenseSolution()
    {
        using var x0 = torch.tensor(new[] { 1.0, 0.0, 0.0, 0.5, 1e-5, 0.5 }).reshape(2, 3);
        var times = new[] { 0.0, 10.0 };
        using var dense = Ode.Solve(Robertson, x0, times, Solvers.Rosenbrock23(), StepSize.Adaptive(1e-6, 1e-10));
        using var blocks = Ode.Solve(Robertson, x0, times, Solvers.Rosenbrock23(rowBlocks: true), StepSize.Adaptive(1e-6, 1e-10));
        using var own = Ode.Solve(Robertson, x0, times, Solvers.Rosenbrock23(rowBlocks: true, jacobian: RobertsonJacobian), StepSize.Adaptive(1e-6, 1e-10));
        Assert.True(dense.Final.allclose(blocks.Final, 1e-9, 1e-14));
        Assert.True(dense.Final.allclose(own.Final, 1e-9, 1e-14));
        Assert.True(own.Statistics.FunctionEvaluations < blocks.Statistics.FunctionEvaluations);
    }

    [Fact]
    public void GradientsFlowThroughRodas4sLinearSolves()
    {
        // dx/dt = −k x from x0 = 1: x(T) = exp(−kT), dx(T)/dk = −T exp(−kT).
        using var k = torch.tensor(new[] { 50.0 }).requires_grad_(true);
        using var x0 = torch.tensor(new[] { 1.0 });
        using var solution = Ode.Solve((t, x) => x.mul(k).neg(), x0, new[] { 0.0, 0.1 }, Solvers.Rodas4(), StepSize.Adaptive(1e-10, 1e-14));
        solution.Final.sum().backward();
        var expected = -0.1 * Math.Exp(-5.0);
        Assert.True(Math.Abs(k.grad!.ToDouble() - expected) < 1e-5 * Math.Abs(expected), $"{k.grad!.ToDouble()} vs {expected}; x(T) = {solution.Final.ToDouble()} vs {Math.Exp(-5.0)}, {solution.Statistics}");
    }

    [Fact]
    public void ASingularRosenbrockMatrixIsNamedWithTheTime()
    {
        using var x0 = torch.tensor(new[] { 1.0 });
        // A NaN Jacobian: the matrix (1/(hγ)) I − J is not finite at any step size.
        var nan = Solvers.Rodas4(jacobian: (t, y) => torch.tensor(new[] { double.NaN }).reshape(1, 1));
        var e = Assert.Throws<OdeSolveException>(() => Ode.Solve((t, x) => x.mul(-1000.0), x0, new[] { 0.5, 1.0 }, nan, StepSize.Adaptive(1e-6, 1e-9)));
        Assert.Equal(OdeFailure.SingularMatrix, e.Failure);
        Assert.Equal(0.5, e.Time);
    }
}
