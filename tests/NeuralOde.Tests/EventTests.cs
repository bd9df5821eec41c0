using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>Events from C#: a bouncing ball's bounce times and their gradient against the closed form; a terminal
/// event.</summary>
public class EventTests
{
    const double G = 9.81;

    [Fact]
    public void ABouncingBallBouncesWhenTheClosedFormSays()
    {
        using var e = torch.tensor(0.8, dtype: torch.float64, requires_grad: true);
        using var x0 = torch.tensor(new[] { 1.0, 0.0 }, dtype: torch.float64);
        var floor = new OdeEvent((t, x) => x[0], EventDirection.Falling,
                                 update: (t, x) => torch.stack(new[] { x[0], -e * x[1] }), name: "floor");
        using var solution = Ode.SolveWithEvents((t, x) => torch.stack(new[] { x[1], torch.tensor(-G, dtype: torch.float64) }),
                                                 x0, new[] { 0.0, 2.0 }, new[] { floor }, stepSize: StepSize.Adaptive(1e-10, 1e-12));
        var t1 = Math.Sqrt(2.0 / G);
        Assert.Equal(3, solution.Events.Count);
        Assert.Equal(t1, solution.Events[0].Time.ToDouble(), 9);
        Assert.Equal(t1 * (1 + 2 * 0.8), solution.Events[1].Time.ToDouble(), 9);
        Assert.Equal(t1 * (1 + 2 * 0.8 + 2 * 0.64), solution.Events[2].Time.ToDouble(), 9);
        solution.Events[2].Time.backward();
        Assert.Equal(t1 * (2 + 4 * 0.8), e.grad!.ToDouble(), 7);   // dt3/de
        Assert.False(solution.Terminated);
    }

    [Fact]
    public void ATerminalEventEndsTheSolve()
    {
        using var x0 = torch.zeros(1, dtype: torch.float64);
        var reach = new OdeEvent((t, x) => x[0] - 0.25, EventDirection.Rising, terminal: true);
        using var solution = Ode.SolveWithEvents((t, x) => torch.ones_like(x), x0, new[] { 0.0, 0.5, 1.0 }, new[] { reach });
        Assert.True(solution.Terminated);
        Assert.Equal(0.25, solution.Events[0].Time.ToDouble(), 10);
        Assert.Equal(new[] { 0.0 }, solution.Times);
        Assert.Throws<ArgumentException>(() => new OdeEvent((t, x) => x[0], terminal: true, update: (t, x) => x));
    }
}
