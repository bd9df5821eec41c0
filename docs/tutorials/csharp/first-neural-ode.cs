// Tutorial 1 in C#: a first Neural ODE, as a file-based app (.NET 10).
//   dotnet run docs/tutorials/csharp/first-neural-ode.cs             (from the repository: the library's source)
//   dotnet run docs/tutorials/csharp/first-neural-ode.cs -- --quick  (the small size the test command runs)
// In a folder of your own, replace the #:project line with `#:package NeuralOde@0.1.0`.
//
// A Neural ODE block maps x to z(1), the solution of dz/ds = f_θ(z) from z(0) = x; with a linear readout it learns to
// separate two moons. The figure shows each test point's path through the trained flow.
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

torch.manual_seed(0);
var generator = new torch.Generator(1);

// The field f_θ: any module from [N, 2] to [N, 2]. The block solves it with RK4 in 10 steps on [0, 1] and is itself
// a module, so it goes into a Sequential with the readout.
var field = Sequential(Linear(2, 32), Tanh(), Linear(32, 2));
var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(10));
var model = Sequential(block, Linear(2, 2));
var optimizer = torch.optim.Adam(model.parameters(), 1e-2);

// An ordinary TorchSharp training loop; each iteration in a dispose scope, so native memory stays flat.
var iterations = quick ? 60 : 300;
for (var i = 1; i <= iterations; i++)
{
    using var scope = torch.NewDisposeScope();
    var (x, y) = Datasets.Moons(n: 256, noise: 0.1, generator: generator);
    var loss = functional.cross_entropy(model.forward(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    if (i % 50 == 0) Console.WriteLine($"iteration {i}: loss {loss.ToDouble():F4}");
}

var (testX, testY) = Datasets.Moons(n: 1000, noise: 0.1, generator: generator);
double accuracy;
using (torch.no_grad())
    accuracy = model.forward(testX).argmax(1).eq(testY).to_type(torch.float32).mean().ToDouble();
Console.WriteLine($"test accuracy: {accuracy:P1}");
Console.WriteLine($"last solve: {block.LastStatistics}");   // 10 RK4 steps: 40 evaluations

// The flow: the trained field solved at 21 depths for 200 test points (every fifth: the data lists one class, then
// the other).
var depths = Enumerable.Range(0, 21).Select(k => k / 20.0).ToArray();
using var points = testX[torch.TensorIndex.Slice(0, 1000, 5)];
using var labels = testY[torch.TensorIndex.Slice(0, 1000, 5)];
using var paths = Ode.Solve(field, points, depths, Solvers.Rk4(), StepSize.Steps(20)).States.detach();   // [21, 200, 2]
var plot = new ScottPlot.Plot();
for (var p = 0; p < 200; p++)
{
    var xs = paths[.., p, 0].data<float>().Select(v => (double)v).ToArray();
    var ys = paths[.., p, 1].data<float>().Select(v => (double)v).ToArray();
    var line = plot.Add.ScatterLine(xs, ys);
    line.Color = (labels[p].ToInt64() == 0 ? ScottPlot.Colors.OrangeRed : ScottPlot.Colors.RoyalBlue).WithAlpha(0.5);
}
plot.Title("Trajectories of the trained flow, s from 0 to 1");
var figure = Path.Combine(outDir, "csharp-first-neural-ode.png");
plot.SavePng(figure, 640, 480);
Console.WriteLine($"figure: {figure}");

if (accuracy <= 0.85)
{
    Console.Error.WriteLine($"CHECK FAILED: test accuracy {accuracy:P1} > 85%");
    return 1;
}
Console.WriteLine($"check: test accuracy {accuracy:P1} > 85%");
return 0;
