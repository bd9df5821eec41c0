// A stiff chemical network with an unknown rate law learned by a neural network, in C#: an implicit solver, per-row
// Jacobian blocks and the interpolated adjoint with an implicit backward solve. A file-based app (.NET 10):
//   dotnet run docs/tutorials/csharp/stiff-chemistry.cs             (from the repository: the library's source)
//   dotnet run docs/tutorials/csharp/stiff-chemistry.cs -- --quick  (the small size the test command runs)
// In a folder of your own, replace the #:project line with `#:package NeuralOde@0.1.0`.
//
// The network A → B → C: B → C is fast and known (mass action, k = 1000: the system is stiff, eigenvalue −1000), A → B
// is slow with a rate law we do not know — in truth Michaelis–Menten, v = 2A/(0.5 + A). A small network learns it as
// v(A) = A·softplus(MLP(A)) (zero at A = 0, never negative) from A(t) and C(t) observed at 11 times for three initial
// amounts of A: a universal differential equation. Each solve takes Kvaerno5 some tens of steps where Dopri5 needs
// over a thousand (it is held to hλ ≤ 3.3 by the fast reaction); gradients come from the interpolated adjoint, whose
// backward solve is stiff too and runs on Kvaerno5 as well.
#:project ../../../src/NeuralOde/NeuralOde.csproj
#:package libtorch-cpu-linux-x64@2.10.0
#:package ScottPlot@5.1.59
#:property ManagePackageVersionsCentrally=false

using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

var quick = args.Contains("--quick");
var outDir = Environment.GetEnvironmentVariable("NEURALODE_TUTORIAL_OUT") is { Length: > 0 } dir ? dir : "out/tutorials";
Directory.CreateDirectory(outDir);

torch.manual_seed(7);
var f64 = torch.ScalarType.Float64;
const double Fast = 1000.0;
double TrueRate(double a) => 2.0 * a / (0.5 + a);

// The network: x = (A, B, C) in the last dimension, rows of a batch independent. `rate` gives v(A) for A [N, 1].
torch.Tensor Network(Func<torch.Tensor, torch.Tensor> rate, torch.Tensor x)
{
    var a = x.narrow(-1, 0, 1);
    var b = x.narrow(-1, 1, 1);
    var v = rate(a);
    var w = b.mul(Fast);
    return torch.cat(new[] { v.neg(), v.sub(w), w }, -1);
}

// Rows do not interact: the Newton iteration's Jacobian is one 3 × 3 block per row.
var stiff = Solvers.Kvaerno5(rowBlocks: true);
var control = StepSize.Adaptive(1e-6, 1e-9);
var times = Enumerable.Range(0, 11).Select(i => 0.4 * i).ToArray();
var x0 = torch.tensor(new[] { 0.5, 0.0, 0.0, 1.5, 0.0, 0.0, 3.0, 0.0, 0.0 }, dtype: f64).reshape(3, 3);

// The observations: the true network, solved tightly.
torch.Tensor observed;
using (torch.no_grad())
using (var truth = Ode.Solve((t, x) => Network(a => a.mul(2.0).div(a.add(0.5)), x), x0, times, stiff, StepSize.Adaptive(1e-10, 1e-13)))
    observed = truth.States.clone();

var mlp = Sequential(Linear(1, 16, dtype: f64), Tanh(), Linear(16, 16, dtype: f64), Tanh(), Linear(16, 1, dtype: f64));
torch.Tensor Learned(torch.Tensor a) => a.mul(functional.softplus(mlp.forward(a)));
torch.Tensor Field(double t, torch.Tensor x) => Network(Learned, x);
var parameters = mlp.parameters().ToArray();

// What an explicit solver pays for the fast reaction: one solve of the learned network by each.
using (torch.no_grad())
{
    using var byKvaerno = Ode.Solve(Field, x0, times, stiff, control);
    using var byDopri = Ode.Solve(Field, x0, times, Solvers.Dopri5(), control);
    Console.WriteLine($"one solve: kvaerno5 {byKvaerno.Statistics.AcceptedSteps} steps ({byKvaerno.Statistics.FunctionEvaluations} evaluations), dopri5 {byDopri.Statistics.AcceptedSteps} steps ({byDopri.Statistics.FunctionEvaluations} evaluations)");
}

// A and C observed (B stays near v/1000): the loss on both, by the interpolated adjoint with Kvaerno5 backward.
var observedAC = torch.cat(new[] { observed.narrow(-1, 0, 1), observed.narrow(-1, 2, 1) }, -1);
var optimizer = torch.optim.Adam(parameters, 0.02);
var iterations = quick ? 6 : 150;
var losses = new List<double>();
var adjoint = Sensitivities.InterpolatedAdjoint(solver: stiff);
for (var i = 0; i < iterations; i++)
{
    using var scope = torch.NewDisposeScope();
    optimizer.zero_grad();
    using var solution = Ode.Solve(Field, x0, times, stiff, control, adjoint, parameters: parameters);
    var states = solution.States;
    var predicted = torch.cat(new[] { states.narrow(-1, 0, 1), states.narrow(-1, 2, 1) }, -1);
    var loss = predicted.sub(observedAC).square().mean();
    Ode.Backward(loss);
    optimizer.step();
    losses.Add(loss.ToDouble());
    if (quick || i % 10 == 0 || i == iterations - 1)
        Console.WriteLine($"iteration {i}: loss {losses[^1]:E3}; forward {solution.Statistics.AcceptedSteps} steps, backward {solution.BackwardStatistics.AcceptedSteps}");
}

// The learned rate law against Michaelis–Menten over the range the data visit.
var grid = Enumerable.Range(0, 30).Select(i => 0.1 + 0.1 * i).ToArray();
double[] learnedRate;
using (torch.no_grad())
using (var a = torch.tensor(grid, dtype: f64).reshape(-1, 1))
using (var v = Learned(a))
    learnedRate = v.reshape(-1).data<double>().ToArray();
double RateError(double from) =>
    grid.Select((a, i) => a < from ? 0.0 : Math.Abs(learnedRate[i] - TrueRate(a)) / TrueRate(a)).Max();
Console.WriteLine($"loss {losses[0]:E2} -> {losses[^1]:E2}; the learned rate law within {100 * RateError(0.1):F1}% of Michaelis–Menten on A in [0.1, 3], {100 * RateError(0.5):F1}% on [0.5, 3]");

// The figure: A and C observed (points) and as the learned network has them (lines: A solid, C dashed), a colour per
// initial amount.
double[] Column(torch.Tensor s, int row, int species) => s.select(1, row).select(-1, species).data<double>().ToArray();
var plot = new ScottPlot.Plot();
var palette = new ScottPlot.Palettes.Category10();
var fineTimes = Enumerable.Range(0, 81).Select(i => 0.05 * i).ToArray();
using (torch.no_grad())
using (var fitted = Ode.Solve(Field, x0, fineTimes, stiff, control))
{
    for (var row = 0; row < 3; row++)
    {
        var colour = palette.GetColor(row);
        var a0 = x0[row, 0].ToDouble();
        foreach (var species in new[] { 0, 2 })
        {
            var points = plot.Add.ScatterPoints(times, Column(observed, row, species));
            points.Color = colour;
            var line = plot.Add.ScatterLine(fineTimes, Column(fitted.States, row, species));
            line.Color = colour;
            line.LineWidth = 2;
            if (species == 2) line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.LegendText = $"{(species == 0 ? "A" : "C")}, A0 = {a0}";
        }
    }
}
plot.Title("A stiff network A → B → C with its rate law A → B learned");
plot.XLabel("t");
plot.YLabel("amount");
plot.ShowLegend(ScottPlot.Alignment.MiddleRight);
var path = Path.Combine(outDir, "stiff-chemistry.png");
plot.SavePng(path, 720, 480);
Console.WriteLine($"figure: {path}");

// The observations constrain the rate law where A spends time; the check is on the fit of what was observed.
var ok = quick ? losses[^1] < 0.5 * losses[0] : losses[^1] < 1e-2 * losses[0];
Console.WriteLine(ok ? "check: the network fits the observed reaction" : "CHECK FAILED: the network did not fit the observed reaction");
return ok ? 0 : 1;
