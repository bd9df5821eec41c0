using System.Linq.Expressions;
using TorchSharp;
using static TorchSharp.torch;

namespace NeuralOde.Tests;

/// <summary>The C# front end of the symbolic layer: a lambda over TorchSharp tensors, translated, evaluates to what
/// the compiled lambda computes; its VJP equals autograd's; unsupported constructs are named.</summary>
public class SymbolicLambdaTests
{
    /// <summary>The shape a test binds to each variable name (2-D throughout; p is positive, for log and sqrt).</summary>
    static readonly Dictionary<string, long[]> Shapes = new()
    {
        ["z"] = new long[] { 3, 2 }, ["x"] = new long[] { 3, 2 }, ["p"] = new long[] { 3, 2 }, ["w"] = new long[] { 2, 2 },
        ["u"] = new long[] { 2, 3 }, ["w1"] = new long[] { 2, 4 }, ["w2"] = new long[] { 4, 2 },
    };

    /// <summary>Random float64 values for the lambda's parameters, in order (scalars 0-dim).</summary>
    static Tensor[] Arguments(LambdaExpression lambda, string[] scalars, Generator g) =>
        lambda.Parameters.Select(p =>
        {
            var name = p.Name!;
            if (scalars.Contains(name)) return randn(Array.Empty<long>(), dtype: float64, generator: g);
            var t = randn(Shapes[name], dtype: float64, generator: g);
            return name == "p" ? t.abs() + 0.5 : t;
        }).ToArray();

    /// <summary>Translates the lambda and checks its value against the compiled lambda's on random tensors (1e-12).</summary>
    static void Agrees(LambdaExpression lambda, SymbolicExpression translated, string[] scalars)
    {
        Assert.Equal(lambda.Parameters.Select(p => p.Name!).Where(n => translated.Variables.Contains(n)).OrderBy(n => n),
                     translated.Variables.OrderBy(n => n));
        var g = new Generator(17);
        var args = Arguments(lambda, scalars, g);
        var env = lambda.Parameters.Zip(args).ToDictionary(pa => pa.First.Name!, pa => pa.Second);
        using var expected = (Tensor)lambda.Compile().DynamicInvoke(args.Cast<object>().ToArray())!;
        using var actual = translated.Evaluate(env);
        Assert.Equal(expected.shape, actual.shape);
        using var difference = (expected - actual).abs().max();
        Assert.True(difference.ToDouble() <= 1e-12, $"{translated}: largest difference {difference.ToDouble():E2}");
        foreach (var a in args) a.Dispose();
    }

    static void Agrees(Expression<Func<Tensor, Tensor>> f, params string[] scalars) => Agrees(f, Symbolic.FromLambda(f, scalars), scalars);
    static void Agrees(Expression<Func<Tensor, Tensor, Tensor>> f, params string[] scalars) => Agrees(f, Symbolic.FromLambda(f, scalars), scalars);
    static void Agrees(Expression<Func<Tensor, Tensor, Tensor, Tensor>> f, params string[] scalars) => Agrees(f, Symbolic.FromLambda(f, scalars), scalars);
    static void Agrees(Expression<Func<Tensor, Tensor, Tensor, Tensor, Tensor>> f, params string[] scalars) => Agrees(f, Symbolic.FromLambda(f, scalars), scalars);
    static void Agrees(Expression<Func<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>> f, params string[] scalars) => Agrees(f, Symbolic.FromLambda(f, scalars), scalars);

    static readonly Dictionary<string, Action> Cases = new()
    {
        ["tensor arithmetic"] = () => Agrees((Tensor z, Tensor x) => (z + x) * z - x / (z * x + x * x + 1.0)),
        ["numbers on either side"] = () => Agrees((Tensor z) => 2 * z - 0.5 + 3 / (z * z + 1) - z * 1.5f + (z - 4L) / 2.5),
        ["captured locals and Scalars"] = () =>
        {
            double c = 0.3;
            int k = 2;
            using Scalar s = 1.25;
            Agrees((Tensor z) => c * z + k - z * s + z * (c * k) + s * z);
        },
        ["unary minus and neg"] = () => Agrees((Tensor z) => -z + (-(z * 2.0)).neg() + torch.neg(z)),
        ["torch functions"] = () => Agrees((Tensor z, Tensor p) =>
            torch.tanh(z) + torch.sigmoid(z) * torch.sin(z) - torch.cos(z) + torch.exp(z * 0.1) + torch.log(p)),
        ["instance functions"] = () => Agrees((Tensor z, Tensor p) => z.tanh() + z.sigmoid() + z.sin() * z.cos() + z.exp() * p.log()),
        ["using static and functional"] = () => Agrees((Tensor z) =>
            tanh(z) * sigmoid(z) + nn.functional.softplus(z * 3.0) + nn.functional.tanh(z) + nn.functional.sigmoid(z)),
        ["powers"] = () => Agrees((Tensor p) => torch.pow(p, 1.5) + p.pow(3) + p.square() - p.sqrt() + torch.pow(p, -1)),
        ["matrix products"] = () => Agrees((Tensor z, Tensor w, Tensor u) => z.matmul(w).mm(u) + torch.matmul(z, torch.mm(w, u))),
        ["transposes"] = () => Agrees((Tensor z, Tensor w) => z.t().T.matmul(w) + z.mT.t().mm(w.T) + torch.t(w.mT).matmul(z.T).T),
        ["sums"] = () => Agrees((Tensor z, Tensor x) => z.sum() * x + x.sum(0L).sum() - torch.sum(z.sum(1, keepdim: false)) + z.sum(-1).sum() * x),
        ["concatenation"] = () => Agrees((Tensor z, Tensor x) =>
            torch.cat(new[] { z, x * 2.0 }, 1) + torch.cat(new List<Tensor> { x, z }, 1) + torch.cat(new[] { z, x }).sum(dim: 0).sum()),
        ["MLP with a scalar bias"] = () => Agrees((Tensor z, Tensor w1, Tensor b, Tensor w2) => tanh(z.matmul(w1) + b).matmul(w2), "b"),
        ["five parameters"] = () => Agrees((Tensor z, Tensor w1, Tensor b, Tensor w2, Tensor x) =>
            nn.functional.softplus(z.matmul(w1) - b).matmul(w2) * x + b, "b"),
    };

    /// <summary>The names of the translation cases.</summary>
    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void TranslationEvaluatesLikeTheCompiledLambda(string name) => Cases[name]();

    [Fact]
    public void VjpOfATranslatedMlpEqualsAutograd()
    {
        var field = Symbolic.FromLambda((Tensor z, Tensor w1, Tensor b, Tensor w2) => tanh(z.matmul(w1) + b).matmul(w2),
                                        scalars: new[] { "b" });
        Assert.Equal(new[] { "z", "w1", "b", "w2" }, field.Variables);
        var g = new Generator(3);
        using var z = randn(new long[] { 5, 2 }, dtype: float64, generator: g).requires_grad_(true);
        using var w1 = randn(new long[] { 2, 4 }, dtype: float64, generator: g).requires_grad_(true);
        using var b = tensor(0.3, dtype: float64);
        using var w2 = randn(new long[] { 4, 2 }, dtype: float64, generator: g);
        using var v = randn(new long[] { 5, 2 }, dtype: float64, generator: g);
        using var y = tanh(z.matmul(w1) + b).matmul(w2);
        var expected = autograd.grad(new[] { y }, new[] { z, w1 }, new[] { v });
        var vjp = field.Vjp(Symbolic.Tensor("v"));
        var env = new Dictionary<string, Tensor> { ["z"] = z, ["w1"] = w1, ["b"] = b, ["w2"] = w2, ["v"] = v };
        foreach (var (name, i) in new[] { ("z", 0), ("w1", 1) })
        {
            using var symbolic = vjp[name].Evaluate(env);
            using var difference = (symbolic - expected[i]).abs().max();
            Assert.True(difference.ToDouble() <= 1e-10, $"d/d{name}: largest difference {difference.ToDouble():E2}");
        }
    }

    static ArgumentException Refused(Action translate)
    {
        var e = Assert.Throws<ArgumentException>(translate);
        Assert.Equal("lambda", e.ParamName);
        return e;
    }

    [Fact]
    public void UnsupportedConstructsAreNamed()
    {
        var abs = Refused(() => Symbolic.FromLambda((Tensor z) => z.abs()));
        Assert.Contains("'abs' of TorchSharp.torch.Tensor", abs.Message);
        Assert.Contains("Supported:", abs.Message);
        Assert.Contains("keepdim: true", Refused(() => Symbolic.FromLambda((Tensor z) => z.sum(0, keepdim: true))).Message);
        using var captured = ones(new long[] { 3, 2 }, dtype: float64);
        var c = Refused(() => Symbolic.FromLambda((Tensor z) => z + captured));
        Assert.Contains("'captured'", c.Message);
        Assert.Contains("make it a lambda parameter", c.Message);
        Assert.Contains("'relu' of TorchSharp.torch.nn.functional", Refused(() => Symbolic.FromLambda((Tensor z) => nn.functional.relu(z))).Message);
        Assert.Contains("'pow'", Refused(() => Symbolic.FromLambda((Tensor z) => z.pow(z))).Message);
        Assert.Contains("beta 2", Refused(() => Symbolic.FromLambda((Tensor z) => nn.functional.softplus(z, 2.0, 20.0))).Message);
        // x.sum(0) is sum(type: ScalarType.Byte) in C# (the literal 0 converts to the enum): refused, with the fix named.
        Assert.Contains("x.sum(0L)", Refused(() => Symbolic.FromLambda((Tensor z) => z.sum(0))).Message);
        Assert.Contains("over several axes", Refused(() => Symbolic.FromLambda((Tensor z) => z.sum(0, 1))).Message);
        Assert.Contains("Conditional", Refused(() => Symbolic.FromLambda((Tensor z) => z.dim() > 1 ? z : -z)).Message);
        Assert.Contains("a value computed from the lambda's parameters",
                        Refused(() => Symbolic.FromLambda((Tensor z) => z.pow(z.dim()))).Message);
        Assert.Throws<ArgumentNullException>(() => Symbolic.FromLambda((Expression<Func<Tensor, Tensor>>)null!));
        var scalars = Assert.Throws<ArgumentException>(() => Symbolic.FromLambda((Tensor z) => z * 2.0, scalars: new[] { "b" }));
        Assert.Equal("scalars", scalars.ParamName);
        Assert.Contains("'b'", scalars.Message);
    }

    [Fact]
    public void ParametersNamedAsScalarsAreScalarVariables()
    {
        var field = Symbolic.FromLambda((Tensor z, Tensor b) => z * b + b, scalars: new[] { "b" });
        using var z = tensor(new[] { 1.0, -2.0, 0.5 }, dtype: float64);
        using var b = tensor(0.75, dtype: float64);
        using var value = field.Evaluate(new Dictionary<string, Tensor> { ["z"] = z, ["b"] = b });
        Assert.Equal(new[] { 1.5, -0.75, 1.125 }, value.data<double>().ToArray());
        using var gradient = field.Vjp(Symbolic.Tensor("z"))["b"].Evaluate(new Dictionary<string, Tensor> { ["z"] = z, ["b"] = b });
        Assert.Equal(0, gradient.Dimensions);
        using var notScalar = tensor(new[] { 0.75, 0.75, 0.75 }, dtype: float64);
        var refused = Assert.Throws<ArgumentException>(() => field.Evaluate(new Dictionary<string, Tensor> { ["z"] = z, ["b"] = notScalar }));
        Assert.Contains("'b'", refused.Message);
        // Without the scalars list, b is a tensor variable and a vector binds.
        var tensorField = Symbolic.FromLambda((Tensor z, Tensor b) => z * b + b);
        using var vector = tensorField.Evaluate(new Dictionary<string, Tensor> { ["z"] = z, ["b"] = notScalar });
        Assert.Equal(new[] { 1.5, -0.75, 1.125 }, vector.data<double>().ToArray());
    }

    [Fact]
    public void LambdasOverExpressionsAreCalledWithNamedVariables()
    {
        var symbolic = Symbolic.FromLambda((SymbolicExpression z, SymbolicExpression w, SymbolicExpression b) =>
            Symbolic.Tanh(Symbolic.MatMul(z, w) + b), scalars: new[] { "b" });
        var fromTensors = Symbolic.FromLambda((Tensor z, Tensor w, Tensor b) => tanh(z.matmul(w) + b), scalars: new[] { "b" });
        Assert.Equal(symbolic.ToString(), fromTensors.ToString());
        Assert.Equal("sin(z) .* 0.5", Symbolic.FromLambda((SymbolicExpression z) => Symbolic.Sin(z) * 0.5).ToString());
        var five = Symbolic.FromLambda((SymbolicExpression a, SymbolicExpression b, SymbolicExpression c, SymbolicExpression d,
                                        SymbolicExpression e) => a + b + c + d + e, scalars: new[] { "e" });
        Assert.Equal(new[] { "a", "b", "c", "d", "e" }, five.Variables);
    }
}
