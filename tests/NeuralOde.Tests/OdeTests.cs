using System;
using TorchSharp;

namespace NeuralOde.Tests;

public class OdeTests
{
    static torch.Tensor Decay(double t, torch.Tensor x) => -x;

    [Fact]
    public void Dopri5SolvesExponentialDecayWithinTolerance()
    {
        using var x0 = torch.tensor(new[] { 1.0, 2.0 });
        using var solution = Ode.Solve(Decay, x0, new[] { 0.0, 0.5, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-8, 1e-10));
        var states = solution.States.data<double>().ToArray();
        Assert.Equal(6, states.Length);
        Assert.Equal(Math.Exp(-0.5), states[2], 7);
        Assert.Equal(2 * Math.Exp(-1.0), states[5], 7);
        Assert.True(solution.Statistics.AcceptedSteps > 0);
        Assert.True(solution.Statistics.FunctionEvaluations >= 6 * solution.Statistics.AcceptedSteps);
    }

    [Fact]
    public void DefaultsAreDopri5AndAdaptive()
    {
        using var x0 = torch.ones(3, dtype: torch.float32);
        using var solution = Ode.Solve(Decay, x0, new[] { 0.0, 1.0 });
        Assert.Equal(torch.float32, solution.Final.dtype);
        Assert.Equal(Math.Exp(-1.0), solution.Final[0].ToDouble(), 5);
    }

    [Fact]
    public void IntegratesBackwardInTime()
    {
        using var x0 = torch.tensor(new[] { Math.Exp(-1.0) });
        using var solution = Ode.Solve(Decay, x0, new[] { 1.0, 0.0 }, Solvers.Tsit5(), StepSize.Adaptive(1e-9, 1e-12));
        Assert.Equal(1.0, solution.Final.ToDouble(), 8);
    }

    [Fact]
    public void FixedStepRk4TakesTheRequestedSteps()
    {
        using var x0 = torch.tensor(new[] { 1.0 });
        using var solution = Ode.Solve(Decay, x0, new[] { 0.0, 1.0 }, Solvers.Rk4(), StepSize.Steps(10));
        Assert.Equal(new SolveStatistics(40, 10, 0), solution.Statistics);
    }

    [Fact]
    public void BadInputNamesTheArgument()
    {
        using var x0 = torch.tensor(new[] { 1.0 });
        var grid = Assert.Throws<ArgumentException>(() => Ode.Solve(Decay, x0, new[] { 0.0, 1.0, 0.5 }));
        Assert.Equal("times", grid.ParamName);
        var rtol = Assert.Throws<ArgumentOutOfRangeException>(() => StepSize.Adaptive(rtol: -1));
        Assert.Equal("rtol", rtol.ParamName);
        Assert.Contains("-1", rtol.Message);
        Assert.Throws<ArgumentException>(() => Ode.Solve(Decay, x0, new[] { 0.0, 1.0 }, Solvers.Rk4(), StepSize.Adaptive()));
    }

    [Fact]
    public void FailedSolveReportsTimeAndKind()
    {
        using var x0 = torch.tensor(new[] { 1.0 });
        var e = Assert.Throws<OdeSolveException>(() =>
            Ode.Solve((t, x) => x * x, x0, new[] { 0.0, 2.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-6, 1e-8)));
        Assert.Equal(OdeFailure.StepSizeUnderflow, e.Failure);
        Assert.InRange(e.Time, 0.999, 1.001);
    }

    [Fact]
    public void SolversCatalogue()
    {
        Assert.Equal(new[] { "euler", "midpoint", "heun", "rk4", "bosh3", "dopri5", "tsit5", "dopri8" },
            Solvers.All.Select(s => s.Name));
        Assert.True(Solvers.ByName("Tsit5").IsAdaptive);
        Assert.False(Solvers.Rk4().IsAdaptive);
        Assert.Equal(5, Solvers.Dopri5().Order);
    }

    /// <summary>The dense solution at times between the outputs: x' = −x from [1, 2] is e^{−t}·x0 everywhere in the
    /// span, to the solver's accuracy; evaluations are differentiable; x0 outlives the solution.</summary>
    [Fact]
    public void DenseSolutionEvaluatesAnywhereInTheSpan()
    {
        using var x0 = torch.tensor(new[] { 1.0, 2.0 }, dtype: torch.float64, requires_grad: true);
        using (var dense = Ode.SolveDense((t, x) => -x, x0, new[] { 0.0, 2.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-10, 1e-12)))
        {
            Assert.Equal(0.0, dense.Start);
            Assert.Equal(2.0, dense.End);
            Assert.True(dense.StepCount > 5);
            foreach (var t in new[] { 0.0, 0.123, 0.77, 1.5, 2.0 })
            {
                using var x = dense.Evaluate(t);
                var values = x.detach().data<double>().ToArray();
                Assert.Equal(Math.Exp(-t), values[0], 8);
                Assert.Equal(2 * Math.Exp(-t), values[1], 8);
            }
            using var many = dense.Evaluate(new[] { 0.3, 0.6, 0.9 });
            Assert.Equal(new long[] { 3, 2 }, many.shape);
            using var at = dense.Evaluate(0.9);
            at.sum().backward();
            Assert.Equal(Math.Exp(-0.9), x0.grad!.data<double>()[0], 7);
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => dense.Evaluate(2.5));
            Assert.Equal("t", e.ParamName);
            Assert.Equal(2.0 * Math.Exp(-2.0), dense.Solution.Final.detach().data<double>()[1], 8);
        }
        Assert.Equal(1.0, x0.detach().data<double>()[0]);
    }

    /// <summary>A tableau given from C#: classical RK4 entered by hand solves exactly as the built-in RK4, and an
    /// inconsistent one is refused with the condition it breaks.</summary>
    [Fact]
    public void CustomTableauSolvesLikeTheBuiltIn()
    {
        var rk4 = Solvers.Custom("my-rk4", 4, new[] { 0.0, 0.5, 0.5, 1.0 },
            new[] { new double[0], new[] { 0.5 }, new[] { 0.0, 0.5 }, new[] { 0.0, 0.0, 1.0 } },
            new[] { 1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6 }, citation: "Kutta 1901");
        Assert.Equal("my-rk4", rk4.Name);
        Assert.False(rk4.IsAdaptive);
        using var x0 = torch.tensor(new[] { 1.0, -0.5 }, dtype: torch.float64);
        Func<double, torch.Tensor, torch.Tensor> f = (t, x) => torch.sin(x) * t;
        using var mine = Ode.Solve(f, x0, new[] { 0.0, 1.0 }, rk4, StepSize.Steps(10));
        using var builtIn = Ode.Solve(f, x0, new[] { 0.0, 1.0 }, Solvers.Rk4(), StepSize.Steps(10));
        Assert.Equal(builtIn.Final.data<double>().ToArray(), mine.Final.data<double>().ToArray());
        var e = Assert.Throws<ArgumentException>(() => Solvers.Custom("bad", 2, new[] { 0.0, 0.5 },
            new[] { new double[0], new[] { 0.4 } }, new[] { 0.0, 1.0 }));
        Assert.Contains("row 1 of A sums to 0.4", e.Message);
    }

    /// <summary>A custom tableau with a NaN coefficient, or dense weights that are NaN inside the step though right at
    /// its ends, is refused when built, naming the coefficient.</summary>
    [Fact]
    public void CustomTableauWithNonFiniteCoefficientsIsRefused()
    {
        var a = Assert.Throws<ArgumentException>(() => Solvers.Custom("nan", 2, new[] { 0.0, 1.0 },
            new[] { new double[0], new[] { double.NaN } }, new[] { 0.5, 0.5 }));
        Assert.Contains("a[1][0] is NaN", a.Message);
        var dense = Assert.Throws<ArgumentException>(() => Solvers.Custom("dense-nan", 2, new[] { 0.0, 1.0 },
            new[] { new double[0], new[] { 1.0 } }, new[] { 0.5, 0.5 },
            denseWeights: theta => theta == 0.0 ? new[] { 0.0, 0.0 } : theta == 1.0 ? new[] { 0.5, 0.5 } : new[] { double.NaN, double.NaN }));
        Assert.Contains("b_0(0.25) is NaN", dense.Message);
    }

    /// <summary>Messages raised through the C# API name the C# API, and its values print readably (no F# option or
    /// record syntax).</summary>
    [Fact]
    public void MessagesAndValuesReadInCSharpTerms()
    {
        static torch.Tensor Decay(double t, torch.Tensor x) => -x;
        using var x0 = torch.ones(2);
        var e = Assert.Throws<ArgumentException>(() => Ode.Solve(Decay, x0, new[] { 0.0, 1.0 }, Solvers.Rk4(), StepSize.Adaptive()));
        Assert.Equal("stepSize", e.ParamName);
        Assert.Contains("StepSize.Fixed(dt)", e.Message);
        Assert.DoesNotContain("StepControl", e.Message);
        Assert.Throws<ArgumentException>(() => new NeuralOdeBlock(TorchSharp.torch.nn.Linear(2, 2), solver: Solvers.Euler()));
        using var times = torch.tensor(new[] { 0.0, 1.0 }, requires_grad: true);
        var t = Assert.Throws<ArgumentException>(() => Ode.Solve(Decay, x0, null, timeTensor: times));
        Assert.Contains("Sensitivities.Adjoint()", t.Message);
        foreach (var text in new[] { StepSize.Adaptive().ToString(), StepSize.Fixed(0.1).ToString(), Sensitivities.Adjoint().ToString(),
                                     Sensitivities.InterpolatedAdjoint(Solvers.Rk4(), StepSize.Steps(4)).ToString() })
        {
            Assert.DoesNotContain("None", text);
            Assert.DoesNotContain("Some(", text);
            Assert.DoesNotContain("{", text);
        }
        using var solution = Ode.Solve(Decay, x0, new[] { 0.0, 0.5, 1.0 });
        Assert.Matches(@"^OdeSolution: 3 time\(s\) from 0 to 1, states \[3, 2\] Float32, \d+ evaluations in \d+ steps \(0 rejected\)$", solution.ToString());
    }

    /// <summary>Symplectic integration from C#: leapfrog keeps the harmonic oscillator's energy within O(h²) over
    /// 10,000 steps of 0.5.</summary>
    /// <summary>An acceleration that returns NaN fails the symplectic solve as a NaN field fails the ODE solvers.</summary>
    [Fact]
    public void SymplecticSolveRaisesOnANonFiniteAcceleration()
    {
        using var q0 = torch.tensor(new[] { 1.0 }, dtype: torch.float64);
        using var p0 = torch.tensor(new[] { 0.0 }, dtype: torch.float64);
        var e = Assert.Throws<OdeSolveException>(() => Symplectic.Solve(Symplectic.Leapfrog(), x => x * double.NaN, q0, p0, 0.5, 10));
        Assert.Equal(OdeFailure.NonFiniteValue, e.Failure);
        Assert.Equal(0.25, e.Time, 12);
    }

    [Fact]
    public void LeapfrogKeepsTheOscillatorsEnergy()
    {
        using var q0 = torch.tensor(new[] { 1.0 }, dtype: torch.float64);
        using var p0 = torch.tensor(new[] { 0.0 }, dtype: torch.float64);
        var (q, p) = Symplectic.Solve(Symplectic.Leapfrog(), x => -x, q0, p0, 0.5, 10_000, saveEvery: 100);
        using (q)
        using (p)
        {
            Assert.Equal(new long[] { 101, 1 }, q.shape);
            var qs = q.data<double>().ToArray();
            var ps = p.data<double>().ToArray();
            for (int i = 0; i < qs.Length; i++)
                Assert.InRange(0.5 * (qs[i] * qs[i] + ps[i] * ps[i]), 0.5 * 0.93, 0.5 * 1.07);
        }
        Assert.Equal(4, Symplectic.Yoshida4().Order);
    }
}

/// <summary>Facade values print in the facade's own terms, not F# record or option syntax.</summary>
public class FacadePrintingTests
{
    [Fact]
    public void StepSizesAndSensitivitiesPrintAsTheCallsThatMakeThem()
    {
        var adaptive = StepSize.Adaptive(1e-5, 1e-7).ToString();
        Assert.StartsWith("StepSize.Adaptive(rtol: ", adaptive);
        Assert.DoesNotContain("None", adaptive);
        Assert.DoesNotContain("{", adaptive);
        Assert.Equal("StepSize.Steps(count: 4, maxSteps: 1000000)", StepSize.Steps(4).ToString());
        Assert.Equal("Sensitivities.Autograd()", Sensitivities.Autograd().ToString());
        var adjoint = Sensitivities.Adjoint(solver: Solvers.Rk4(), seminorm: true, checkpoints: 2).ToString();
        Assert.Equal("Sensitivities.Adjoint(solver: rk4, seminorm: true, checkpoints: 2)", adjoint);
    }

}
