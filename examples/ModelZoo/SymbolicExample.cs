using NeuralOde;
using TorchSharp;

namespace ModelZoo;

/// <summary>Symbolic derivations (the paper's formulas for your field): the field f(z) = tanh(z W) ⊙ c with a
/// running loss ‖z‖², its adjoint system and Theorem 1's integrands printed as text and LaTeX, and the symbolic
/// vector–Jacobian product checked against autograd at a random point. The same field is also written as an ordinary
/// C# lambda over tensors and translated (<c>Symbolic.FromLambda</c>).</summary>
public static class SymbolicExample
{
    /// <summary>Prints the derivation; returns the largest difference between the symbolic and autograd VJPs.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var z = Symbolic.Tensor("z");
        var w = Symbolic.Tensor("W");
        var c = Symbolic.Scalar("c");
        var field = Symbolic.Tanh(Symbolic.MatMul(z, w)) * c;
        var derivation = SymbolicDerivation.Derive(field, "z", new[] { "W", "c" }, runningLoss: Symbolic.Sum(z * z));
        foreach (var line in derivation.ToText()) log.WriteLine(line);
        foreach (var line in derivation.ToLatex()) log.WriteLine(line);

        var g = new torch.Generator(quick ? 1UL : 2UL);
        using var zv = torch.randn(new long[] { 4, 3 }, dtype: torch.float64, generator: g).requires_grad_(true);
        using var wv = torch.randn(new long[] { 3, 3 }, dtype: torch.float64, generator: g).requires_grad_(true);
        using var cv = torch.tensor(1.5, dtype: torch.float64).requires_grad_(true);
        using var a = torch.randn(new long[] { 4, 3 }, dtype: torch.float64, generator: g);
        var env = new Dictionary<string, torch.Tensor> { ["z"] = zv, ["W"] = wv, ["c"] = cv, ["a"] = a };
        using var y = field.Evaluate(env);
        using var pairing = (y * a).sum();
        pairing.backward();
        var worst = 0.0;
        foreach (var (name, leaf) in new[] { ("W", wv), ("c", cv) })
        {
            using var symbolic = derivation.ParameterIntegrands[name].Evaluate(env);
            using var difference = (symbolic - leaf.grad!).abs().max();
            worst = Math.Max(worst, difference.ToDouble());
        }
        log.WriteLine($"largest difference between the symbolic integrands aᵀ∂f/∂θ and autograd: {worst:E2}");

        // The field as a lambda over tensors (it runs numerically as written) gives the same expression.
        var fromLambda = Symbolic.FromLambda((torch.Tensor z, torch.Tensor W, torch.Tensor c) => torch.tanh(z.matmul(W)) * c,
                                             scalars: new[] { "c" });
        log.WriteLine($"from a C# lambda: {fromLambda}");
        using var lambdaValue = fromLambda.Evaluate(env);
        using var lambdaDifference = (lambdaValue - y).abs().max();
        log.WriteLine($"largest difference between the lambda's expression and the field: {lambdaDifference.ToDouble():E2}");
        worst = Math.Max(worst, lambdaDifference.ToDouble());
        return worst;
    }
}
