// The C# quickstart: a console app solving an ODE whose solution is known, with adjoint gradients.
// In the test command it is also built as a new console app against the packed NeuralOde package
// (tests/Consumers/Consumers.fsx): its first TorchSharp call comes before any NeuralOde call, so the native backend
// must load by the package's build-time fix alone. x' = a x, x(0) = x0, with a the weight of a 1×1 linear layer: x(1) = x0 e^a,
// dx(1)/dx0 = e^a and dx(1)/da = x0 e^a, the latter two by the adjoint.
using NeuralOde;
using TorchSharp;

using var x0 = torch.tensor(new[] { 2.0 }, dtype: torch.float64, requires_grad: true);
using var field = torch.nn.Linear(1, 1, hasBias: false, dtype: torch.float64);
using (torch.no_grad()) field.weight!.fill_(-0.5);
using var solution = Ode.Solve(field, x0, new[] { 0.0, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-10, 1e-12),
                               Sensitivities.Adjoint());
solution.Final.sum().backward();
double a = -0.5, e = Math.Exp(a);
var errors = new[]
{
    Math.Abs(solution.Final.ToDouble() - 2.0 * e),
    Math.Abs(x0.grad!.ToDouble() - e),
    Math.Abs(field.weight!.grad!.ToDouble() - 2.0 * e),
};
var worst = errors.Max();
Console.WriteLine($"C# app: x(1) = {solution.Final.ToDouble():F10}, dx(1)/dx0 = {x0.grad!.ToDouble():F10}, dx(1)/da = {field.weight!.grad!.ToDouble():F10}; largest error {worst:E1}");
if (worst > 1e-7) { Console.WriteLine("FAILED: the solution or its adjoint gradients are off"); return 1; }
Console.WriteLine("quickstart ok: the solution and its adjoint gradients match the closed forms");
return 0;
