using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>Per-row status from C#: Ode.TrySolve's FailedRows, Ode.TrySolveRows and Ode.TrySolveSpans.</summary>
public class RowsTests
{
    [Fact]
    public void OneExplodingRowFailsAloneAndTheOthersEqualTheirSolveAlone()
    {
        // dx/dt = x²: x0 = 5 blows up at t = 0.2; the other rows stay finite on [0, 1].
        using var x0 = torch.tensor(new[] { 0.1, 5.0, 0.3 }, dtype: torch.float64).reshape(3, 1);
        var times = new[] { 0.0, 0.5, 1.0 };
        var step = StepSize.Adaptive(rtol: 1e-8, atol: 1e-10);
        using (var batch = Ode.TrySolve((t, x) => x.square(), x0, times, stepSize: step))
        {
            Assert.False(batch.Succeeded);
            Assert.Equal(new[] { 1 }, batch.FailedRows);
        }
        using var rows = Ode.TrySolveRows((t, x) => x.square(), x0, times, stepSize: step);
        Assert.Equal(new[] { 1 }, rows.FailedRows);
        Assert.False(rows.Rows[1].Solved);
        Assert.InRange(rows.Rows[1].FailureTime!.Value, 0.19, 0.201);
        Assert.True(rows.Rows[0].Solved && rows.Rows[2].Solved);
        using var others = torch.tensor(new[] { 0.1, 0.3 }, dtype: torch.float64).reshape(2, 1);
        using var alone = Ode.Solve((t, x) => x.square(), others, times, stepSize: step);
        using var kept = rows.States.index_select(1, torch.tensor(new long[] { 0, 2 }));
        Assert.Equal(0.0, (kept - alone.States).abs().max().ToDouble());
        Assert.True(double.IsNaN(rows.States[2, 1, 0].ToDouble()), "the failed row is NaN after its failure");
        Assert.Contains("2 of 3 row(s) solved; failed: [1]", rows.ToString());
    }

    [Fact]
    public void TrySolveSpansReportsTheSampleWhoseSpanCrossesItsBlowUp()
    {
        using var x0 = torch.ones(3, 1, dtype: torch.float64);
        using var t0 = torch.zeros(3, dtype: torch.float64);
        using var t1 = torch.tensor(new[] { 0.5, 2.0, 0.9 }, dtype: torch.float64);
        using var rows = Ode.TrySolveSpans((t, x) => x.square(), x0, t0, t1, stepSize: StepSize.Adaptive(rtol: 1e-8, atol: 1e-10));
        Assert.Equal(new[] { 1 }, rows.FailedRows);
        Assert.Equal(2.0, rows.States[1, 0, 0].ToDouble(), 5);
        Assert.Equal(10.0, rows.States[1, 2, 0].ToDouble(), 4);
    }

    [Fact]
    public void SolveSpansWithAnAdjointAndNoParametersIsRefusedAsSolveIs()
    {
        using var k = torch.tensor(0.7, dtype: torch.float64).requires_grad_(true);
        using var x0 = torch.ones(2, 1, dtype: torch.float64);
        using var t0 = torch.zeros(2, dtype: torch.float64);
        using var t1 = torch.ones(2, dtype: torch.float64);
        var e = Assert.Throws<ArgumentNullException>(() => Ode.SolveSpans((t, x) => x * k, x0, t0, t1, sensitivity: Sensitivities.Adjoint()));
        Assert.Equal("parameters", e.ParamName);
        // With the parameter listed, the adjoint's gradient reaches k: d/dk of sum(e^k) over two samples.
        using var solution = Ode.SolveSpans((t, x) => x * k, x0, t0, t1, sensitivity: Sensitivities.Adjoint(), parameters: new[] { k });
        solution.Final.sum().backward();
        Assert.Equal(2 * Math.Exp(0.7), k.grad!.ToDouble(), 4);
    }
}
