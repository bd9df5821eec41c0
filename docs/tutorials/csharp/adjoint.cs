// Tutorial 2 in C#: gradients by the adjoint, as a file-based app (.NET 10).
//   dotnet run docs/tutorials/csharp/adjoint.cs             (from the repository: the library's source)
//   dotnet run docs/tutorials/csharp/adjoint.cs -- --quick  (the small size the test command runs)
// In a folder of your own, replace the #:project line with `#:package NeuralOde@0.1.0`.
//
// Autograd through the solver stores every intermediate of every step; the adjoint solves an ODE backward in time for
// the gradient, in memory that does not grow with the steps. Its gradient is that of the continuous problem, so it
// approaches autograd's as the tolerance tightens: this app measures how fast, for the backsolve adjoint and the
// interpolated adjoint, and draws it.
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

torch.manual_seed(1);
var f64 = torch.ScalarType.Float64;
var field = Sequential(Linear(2, 32, dtype: f64), Tanh(), Linear(32, 2, dtype: f64));
using (torch.no_grad())
    foreach (var p in field.parameters()) p.mul_(3.0);      // larger weights: a field with some curvature to resolve
var x0 = torch.randn(quick ? 16 : 64, 2, dtype: f64);
var parameters = field.parameters().ToArray();

// The gradient of L = Σ x(3)² with respect to the field's parameters under a sensitivity and a tolerance. Passing the
// module to Ode.Solve lets an adjoint find its parameters; Ode.Backward is loss.backward() that raises a failed
// backward solve as its own exception.
(torch.Tensor Gradient, int Forward, int Backward) GradientOf(Sensitivity sensitivity, double tolerance)
{
    field.zero_grad();
    using var solution = Ode.Solve(field, x0, new[] { 0.0, 3.0 }, Solvers.Dopri5(),
                                   StepSize.Adaptive(tolerance, tolerance * 1e-2), sensitivity);
    using var loss = solution.Final.square().sum();
    Ode.Backward(loss);
    var gradient = torch.cat(parameters.Select(p => p.grad!.flatten()).ToArray(), 0).clone();
    return (gradient, solution.Statistics.FunctionEvaluations, solution.BackwardStatistics.FunctionEvaluations);
}

var reference = GradientOf(Sensitivities.Autograd(), quick ? 1e-9 : 1e-10).Gradient;
double Distance(torch.Tensor g) => (g - reference).norm().ToDouble() / reference.norm().ToDouble();

var tolerances = quick ? new[] { 1e-3, 1e-5 } : new[] { 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9 };
var adjointErrors = new List<double>();
var interpolatedErrors = new List<double>();
foreach (var tolerance in tolerances)
{
    var (adjoint, forward, backward) = GradientOf(Sensitivities.Adjoint(), tolerance);
    var (interpolated, _, _) = GradientOf(Sensitivities.InterpolatedAdjoint(), tolerance);
    adjointErrors.Add(Distance(adjoint));
    interpolatedErrors.Add(Distance(interpolated));
    Console.WriteLine($"rtol {tolerance:G}: adjoint {adjointErrors[^1]:E2}, interpolated {interpolatedErrors[^1]:E2} " +
                      $"(evaluations forward {forward}, backward {backward})");
}

var plot = new ScottPlot.Plot();
var logTolerances = tolerances.Select(Math.Log10).ToArray();
plot.Add.Scatter(logTolerances, adjointErrors.Select(Math.Log10).ToArray()).LegendText = "adjoint (backsolve)";
plot.Add.Scatter(logTolerances, interpolatedErrors.Select(Math.Log10).ToArray()).LegendText = "interpolated adjoint";
plot.XLabel("log10 rtol");
plot.YLabel("log10 relative distance to autograd's gradient");
plot.ShowLegend();
var figure = Path.Combine(outDir, "csharp-adjoint.png");
plot.SavePng(figure, 640, 480);
Console.WriteLine($"figure: {figure}");

var tightest = adjointErrors[^1];
if (!(tightest < 1e-4))
{
    Console.Error.WriteLine($"CHECK FAILED: at rtol {tolerances[^1]:G} the adjoint's gradient is within {tightest:E1} of autograd's");
    return 1;
}
Console.WriteLine($"check: at rtol {tolerances[^1]:G} the adjoint's gradient is within {tightest:E1} of autograd's");
return 0;
