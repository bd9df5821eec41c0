using System;
using System.Linq;
using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>The IMEX solvers from C#: a split reaction–diffusion problem (Fisher–KPP, diffusion stiff) with
/// <c>Ode.SolveSplit</c> and KenCarp4 against SciPy's Radau, in far fewer steps than Dopri5 on the sum; a Jacobian of
/// the stiff part of your own; a part of the wrong shape named with the time.</summary>
public class ImexSolverTests
{
    const int Points = 32;
    const double Rate = 20.0;

    /// <summary>D/dx² times the second differences on 32 interior points of (0, 1), D = 1 (symmetric).</summary>
    static torch.Tensor Laplacian()
    {
        var dx = 1.0 / (Points + 1);
        var m = new double[Points * Points];
        for (var i = 0; i < Points; i++)
        {
            m[i * Points + i] = -2.0 / (dx * dx);
            if (i > 0) m[i * Points + i - 1] = 1.0 / (dx * dx);
            if (i < Points - 1) m[i * Points + i + 1] = 1.0 / (dx * dx);
        }
        return torch.tensor(m).reshape(Points, Points);
    }

    static torch.Tensor Reaction(double t, torch.Tensor u) => u.mul(u.neg().add(1.0)).mul(Rate);

    static torch.Tensor X0()
    {
        var dx = 1.0 / (Points + 1);
        return torch.tensor(Enumerable.Range(1, Points).Select(i => 0.5 * Math.Sin(Math.PI * dx * i)).ToArray());
    }

    // SciPy Radau at rtol 1e-12 (tests/NeuralOde.Core.Tests/Implicit/stiff_references.py): u at points 3, 8, 16, 24, t = 1.
    static readonly long[] Picked = { 3, 8, 16, 24 };
    static readonly double[] Reference = { 0.23848359551082451, 0.4626166168025611, 0.5884686772598987, 0.4264028305205025 };

    static double RelativeError(OdeSolution solution)
    {
        var final = solution.Final.data<double>().ToArray();
        return Picked.Select((p, k) => Math.Abs(final[p] - Reference[k]) / Reference[k]).Max();
    }

    [Fact]
    public void KenCarp4SolvesASplitReactionDiffusionProblemInFarFewerStepsThanDopri5()
    {
        using var laplacian = Laplacian();
        using var x0 = X0();
        var times = new[] { 0.0, 1.0 };
        torch.Tensor Diffusion(double t, torch.Tensor u) => u.matmul(laplacian);
        using var imex = Ode.SolveSplit(Reaction, Diffusion, x0, times, Solvers.KenCarp4(), StepSize.Adaptive(1e-6, 1e-9));
        using var dopri = Ode.Solve((t, u) => Reaction(t, u).add(Diffusion(t, u)), x0, times, Solvers.Dopri5(), StepSize.Adaptive(1e-6, 1e-9));
        Assert.True(RelativeError(imex) < 1e-4, $"relative error {RelativeError(imex)}");
        Assert.True(imex.Statistics.AcceptedSteps * 10 < dopri.Statistics.AcceptedSteps,
            $"KenCarp4 {imex.Statistics.AcceptedSteps} accepted steps, Dopri5 {dopri.Statistics.AcceptedSteps}");
        Assert.True(Solvers.KenCarp4().IsImplicit);
        Assert.Equal("kencarp4", Solvers.ByName("KenCarp4").Name);
        Assert.Contains(Solvers.Implicit, s => s.Name == "kencarp5");
    }

    [Fact]
    public void AJacobianOfTheStiffPartGivesTheSameSolution()
    {
        using var laplacian = Laplacian();
        using var x0 = X0();
        var times = new[] { 0.0, 0.5, 1.0 };
        torch.Tensor Diffusion(double t, torch.Tensor u) => u.matmul(laplacian);
        using var viaAutograd = Ode.SolveSplit(Reaction, Diffusion, x0, times, Solvers.KenCarp3(), StepSize.Adaptive(1e-6, 1e-9));
        using var viaOwn = Ode.SolveSplit(Reaction, Diffusion, x0, times,
            Solvers.KenCarp3(jacobian: (t, u) => laplacian.t().contiguous()), StepSize.Adaptive(1e-6, 1e-9));
        using var difference = viaOwn.States.sub(viaAutograd.States).abs().max();
        Assert.True(difference.item<double>() < 1e-10, $"largest difference {difference.item<double>()}");
    }

    [Fact]
    public void APartOfTheWrongShapeIsNamedWithTheTime()
    {
        using var x0 = torch.tensor(new[] { 1.0, 1.0 });
        var e = Assert.Throws<OdeSolveException>(() =>
            Ode.SolveSplit((t, x) => t > 0.3 ? torch.zeros(1, dtype: torch.float64) : x.neg(), (t, x) => x.mul(-100.0),
                x0, new[] { 0.0, 1.0 }, Solvers.KenCarp5()));
        Assert.Equal(OdeFailure.VectorFieldMismatch, e.Failure);
        Assert.Contains("non-stiff part", e.Message);
        Assert.True(e.Time > 0.3, $"at t = {e.Time}");
    }
}
