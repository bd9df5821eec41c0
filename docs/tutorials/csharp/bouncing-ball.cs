// Events in C#: a bouncing ball whose gravity and restitution are learned from its bounce times and heights, by
// gradients through the event times. A file-based app (.NET 10):
//   dotnet run docs/tutorials/csharp/bouncing-ball.cs             (from the repository: the library's source)
//   dotnet run docs/tutorials/csharp/bouncing-ball.cs -- --quick  (the small size the test command runs)
// In a folder of your own, replace the #:project line with `#:package NeuralOde@0.1.0`.
//
// The setting of torchdiffeq's examples/bouncing_ball.py (our own code): a ball of radius 0.2 dropped from height 10;
// state (height, velocity), dx/dt = (v, −g); when the height falls to the radius it bounces, v ← −e·v. The five
// bounce times and the apex heights after them are observed for g = 9.8, e = 0.8; starting from g = 9.0, e = 0.7,
// Adam fits both through the event times' gradients (the implicit-function theorem: no differentiation through the
// root finding).
#:project ../../../src/NeuralOde/NeuralOde.csproj
#:package libtorch-cpu-linux-x64@2.10.0
#:package ScottPlot@5.1.59
#:property ManagePackageVersionsCentrally=false

using NeuralOde;
using TorchSharp;

var quick = args.Contains("--quick");
var outDir = Environment.GetEnvironmentVariable("NEURALODE_TUTORIAL_OUT") is { Length: > 0 } dir ? dir : "out/tutorials";
Directory.CreateDirectory(outDir);

const double Radius = 0.2, Height = 10.0, TrueG = 9.8, TrueE = 0.8;
const int Bounces = 5;
var f64 = torch.ScalarType.Float64;

// The observations, from the closed form: t1 = sqrt(2(h0 − r)/g), then flights of 2v/g with v ← e·v.
var (observedTimes, observedHeights) = (new double[Bounces], new double[Bounces]);
{
    double t = Math.Sqrt(2 * (Height - Radius) / TrueG), v = TrueG * t;
    for (var k = 0; k < Bounces; k++)
    {
        observedTimes[k] = t;
        v *= TrueE;
        observedHeights[k] = Radius + v * v / (2 * TrueG);
        t += 2 * v / TrueG;
    }
}

var gravity = torch.tensor(9.0, dtype: f64, requires_grad: true);
var restitution = torch.tensor(0.7, dtype: f64, requires_grad: true);
torch.Tensor Fall(double t, torch.Tensor x) => torch.stack(new[] { x[1], -gravity });
var floor = new OdeEvent((t, x) => x[0] - Radius, EventDirection.Falling,
                         update: (t, x) => torch.stack(new[] { x[0], -restitution * x[1] }), name: "floor");

// The five bounces (times, and apex heights r + v⁺²/2g from the velocity after each) and the trajectory at `times`.
(torch.Tensor Times, torch.Tensor Heights, EventSolution Solution) Bounce(double[] times)
{
    var solution = Ode.SolveWithEvents(Fall, torch.tensor(new[] { Height, 0.0 }, dtype: f64), times, new[] { floor },
                                       stepSize: StepSize.Adaptive(1e-8, 1e-8), stopAfterEvents: Bounces);
    var events = solution.Events.Take(Bounces).ToArray();
    var bounceTimes = torch.stack(events.Select(e => e.Time).ToArray());
    var heights = torch.stack(events.Select(e => Radius + (restitution * e.State[1]).square() / (2 * gravity)).ToArray());
    return (bounceTimes, heights, solution);
}

// A span long enough for five bounces at any parameters training visits; the solve stops after the fifth.
var span = new[] { 0.0, 20.0 };
var targetTimes = torch.tensor(observedTimes, dtype: f64);
var targetHeights = torch.tensor(observedHeights, dtype: f64);
var optimizer = torch.optim.Adam(new[] { new TorchSharp.Modules.Parameter(gravity), new TorchSharp.Modules.Parameter(restitution) }, 0.05);
var parameters = optimizer.parameters().ToArray();
gravity = parameters[0];
restitution = parameters[1];
var iterations = quick ? 30 : 150;
var losses = new List<double>();
var plotTimes = Enumerable.Range(0, 301).Select(i => (observedTimes[^1] + 0.3) * i / 300.0).ToArray();
(double[] T, double[] H) Heights()
{
    using var _ = torch.no_grad();
    var (_, _, solution) = Bounce(plotTimes);
    using (solution) return (solution.Times, solution.States.select(1, 0).data<double>().ToArray());
}
var before = Heights();
for (var i = 0; i < iterations; i++)
{
    using var scope = torch.NewDisposeScope();
    optimizer.zero_grad();
    var (times, heights, solution) = Bounce(span);
    var loss = (times - targetTimes).square().mean() + (heights - targetHeights).square().mean();
    loss.backward();
    optimizer.step();
    losses.Add(loss.ToDouble());
}
var after = Heights();
Console.WriteLine($"loss {losses[0]:E2} -> {losses[^1]:E2}; g = {gravity.ToDouble():F4} (true {TrueG}), e = {restitution.ToDouble():F4} (true {TrueE})");

var plot = new ScottPlot.Plot();
plot.Add.Scatter(before.T, before.H).LegendText = "before training (g = 9.0, e = 0.7)";
plot.Add.Scatter(after.T, after.H).LegendText = $"learned (g = {gravity.ToDouble():F3}, e = {restitution.ToDouble():F3})";
var marks = plot.Add.ScatterPoints(observedTimes, observedTimes.Select(_ => Radius).ToArray());
marks.LegendText = "observed bounce times";
plot.Title("A bouncing ball fitted through its event times");
plot.XLabel("t");
plot.YLabel("height");
plot.ShowLegend(ScottPlot.Alignment.UpperRight);
var path = Path.Combine(outDir, "bouncing-ball.png");
plot.SavePng(path, 640, 480);
Console.WriteLine($"figure: {path}");

var ok = quick ? losses[^1] < 0.1 * losses[0]
               : Math.Abs(gravity.ToDouble() - TrueG) < 0.05 && Math.Abs(restitution.ToDouble() - TrueE) < 0.01;
Console.WriteLine(ok ? "check: the fit recovers the ball's parameters" : "CHECK FAILED: the fit did not recover the ball's parameters");
return ok ? 0 : 1;
