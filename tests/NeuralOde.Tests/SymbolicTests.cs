using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>The symbolic layer from C#: operators build the expression, its VJP equals autograd's, and the paper's
/// worked example derives the hand-written adjoint system.</summary>
public class SymbolicTests
{
    [Fact]
    public void VjpOfAFieldEqualsAutograd()
    {
        var z = Symbolic.Tensor("z");
        var w = Symbolic.Tensor("w");
        var b = Symbolic.Scalar("b");
        var f = Symbolic.Tanh(Symbolic.MatMul(z, w)) * b + Symbolic.Sin(z) * 0.5;
        Assert.Equal("tanh(z @ w) .* b + sin(z) .* 0.5", f.ToString());
        var g = new torch.Generator(5);
        using var zv = torch.randn(new long[] { 3, 2 }, dtype: torch.float64, generator: g).requires_grad_(true);
        using var wv = torch.randn(new long[] { 2, 2 }, dtype: torch.float64, generator: g).requires_grad_(true);
        using var bv = torch.tensor(0.7, dtype: torch.float64).requires_grad_(true);
        using var v = torch.randn(new long[] { 3, 2 }, dtype: torch.float64, generator: g);
        var env = new Dictionary<string, torch.Tensor> { ["z"] = zv, ["w"] = wv, ["b"] = bv, ["v"] = v };
        using var y = f.Evaluate(env);
        using var loss = (y * v).sum();
        loss.backward();
        var vjp = f.Vjp(Symbolic.Tensor("v"));
        foreach (var (name, leaf) in new[] { ("z", zv), ("w", wv), ("b", bv) })
        {
            using var symbolic = vjp[name].Evaluate(env);
            var expected = leaf.grad!.data<double>().ToArray();
            var actual = symbolic.detach().data<double>().ToArray();
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 10);
        }
    }

    [Fact]
    public void ToLatexEscapesTheSpecialCharactersOfNames()
    {
        var e = Symbolic.Tensor("a}b") + Symbolic.Tensor("c{") * Symbolic.Tensor("rate%");
        Assert.Equal("\\mathrm{a\\}b} + \\mathrm{c\\{} \\odot \\mathrm{rate\\%}", e.ToLatex());
    }

    [Fact]
    public void WorkedExampleDerivesTheHandWrittenAdjointSystem()
    {
        var z = Symbolic.Tensor("z");
        var theta = Symbolic.Scalar("theta");
        var s = Symbolic.Scalar("s");
        var field = theta * z + Symbolic.Sin(z);
        var loss = Symbolic.Pow(z - Symbolic.Sin(2 * Math.PI * s), 2);
        var derivation = SymbolicDerivation.Derive(field, "z", new[] { "theta" }, loss);
        Assert.Equal("dz/ds = theta .* z + sin(z)", derivation.ToText()[0]);
        Assert.Contains("\\psi_j(s)", derivation.ToLatex("theta")[3]);
        using var zv = torch.tensor(new[] { 0.3, -1.2 }, dtype: torch.float64);
        using var av = torch.tensor(new[] { 0.5, 2.0 }, dtype: torch.float64);
        using var th = torch.tensor(-0.4, dtype: torch.float64);
        using var sv = torch.tensor(0.25, dtype: torch.float64);
        var env = new Dictionary<string, torch.Tensor> { ["z"] = zv, ["a"] = av, ["theta"] = th, ["s"] = sv };
        using var derived = derivation.AdjointDerivative.Evaluate(env);
        var d = derived.data<double>().ToArray();
        double[] zs = { 0.3, -1.2 }, a = { 0.5, 2.0 };
        for (int i = 0; i < 2; i++)
            Assert.Equal(-a[i] * (-0.4 + Math.Cos(zs[i])) - 2 * (zs[i] - Math.Sin(2 * Math.PI * 0.25)), d[i], 12);
        Assert.Throws<ArgumentException>(() => SymbolicDerivation.Derive(field, "z", new[] { "w" }));
    }

    /// <summary>The paper-spec §2.4 problem with θ(s) given: f = θ(s) z + sin z, l = (z − sin 2πs)², Φ = (z(1) − 1)²,
    /// x = 0.5, α = (−0.3, 0.8, −0.5), by the symbolic adjoint at tight tolerances.</summary>
    static SymbolicGradients SolveTestVector(SymbolicExpression theta, out SymbolicExpression field)
    {
        var z = Symbolic.Tensor("z");
        var s = Symbolic.Scalar("s");
        field = theta * z + Symbolic.Sin(z);
        var loss = Symbolic.Pow(z - Symbolic.Sin(2 * Math.PI * s), 2);
        var alpha = new Dictionary<string, torch.Tensor>
        {
            ["alpha0"] = torch.tensor(-0.3, dtype: torch.float64),
            ["alpha1"] = torch.tensor(0.8, dtype: torch.float64),
            ["alpha2"] = torch.tensor(-0.5, dtype: torch.float64),
        };
        using var x0 = torch.tensor(new[] { 0.5 }, dtype: torch.float64);
        return SymbolicAdjoint.Gradients(field, "z", alpha, zS => (zS - 1.0) * 2.0, x0, 0, 1, depth: "s", runningLoss: loss,
                                         stepSize: StepSize.Adaptive(1e-11, 1e-13));
    }

    /// <summary>The paper-spec §2.4 test vector from C#: dℓ/dx and dℓ/dα of the scalar Galerkin field by the
    /// symbolic adjoint (reference: an independent pure-Python RK4 with 4000 steps).</summary>
    [Fact]
    public void SymbolicAdjointReproducesTheTestVector()
    {
        var twoPiS = 2 * Math.PI * Symbolic.Scalar("s");
        var theta = Symbolic.Scalar("alpha0") + Symbolic.Scalar("alpha1") * Symbolic.Cos(twoPiS) + Symbolic.Scalar("alpha2") * Symbolic.Sin(twoPiS);
        var r = SolveTestVector(theta, out _);
        Assert.Equal(1.4311080079, r.StateGradient.ToDouble(), 8);
        Assert.Equal(0.5779161021, r.ParameterGradients["alpha0"].ToDouble(), 8);
        Assert.Equal(-0.1145267664, r.ParameterGradients["alpha1"].ToDouble(), 8);
        Assert.Equal(0.1098826299, r.ParameterGradients["alpha2"].ToDouble(), 8);
    }

    /// <summary>A Galerkin parameter written with basis functions: the symbolic spectral gradient (Corollary 1)
    /// matches the test vector written with explicit cosines and sines.</summary>
    [Fact]
    public void GalerkinCoefficientsThroughBasisFunctions()
    {
        var basis = Bases.Fourier(1);                       // (1, cos 2πs, sin 2πs)
        var theta = Symbolic.Galerkin(basis, new[] { Symbolic.Scalar("alpha0"), Symbolic.Scalar("alpha1"), Symbolic.Scalar("alpha2") },
                                      Symbolic.Scalar("s"));
        var r = SolveTestVector(theta, out var field);
        Assert.Equal(0.5779161021, r.ParameterGradients["alpha0"].ToDouble(), 8);
        Assert.Equal(-0.1145267664, r.ParameterGradients["alpha1"].ToDouble(), 8);
        Assert.Equal(0.1098826299, r.ParameterGradients["alpha2"].ToDouble(), 8);
        Assert.Contains("psi_1(s)", field.ToString());
    }

    /// <summary>The closed form of a linear Galerkin field from C#, and its gradient against finite differences.</summary>
    [Fact]
    public void LinearClosedFormAndItsGradient()
    {
        var z = Symbolic.Tensor("z");
        var s = Symbolic.Scalar("s");
        var basis = Bases.Polynomial(2);
        var field = Symbolic.Galerkin(basis, new[] { Symbolic.Scalar("a0"), Symbolic.Scalar("a1") }, s) * z;
        var solution = Symbolic.LinearClosedForm(field, "z", "s", Symbolic.Tensor("z0"), Symbolic.Scalar("S"));
        Assert.NotNull(solution);
        Assert.Null(Symbolic.LinearClosedForm(Symbolic.Tanh(field), "z", "s", Symbolic.Tensor("z0"), Symbolic.Scalar("S")));
        double Final(double a0, double a1)
        {
            var env = new Dictionary<string, torch.Tensor>
            {
                ["a0"] = torch.tensor(a0, dtype: torch.float64), ["a1"] = torch.tensor(a1, dtype: torch.float64),
                ["z0"] = torch.tensor(new[] { 1.5 }, dtype: torch.float64), ["S"] = torch.tensor(1.0, dtype: torch.float64),
            };
            using var value = solution!.Evaluate(env);
            return value.ToDouble();
        }
        // z(1) = 1.5 exp(a0 + a1/2): the derivative with respect to a1 is z(1)/2.
        Assert.Equal(1.5 * Math.Exp(0.3 + 0.2 / 2), Final(0.3, 0.2), 12);
        var gradient = solution!.Vjp(1.0)["a1"];
        var env2 = new Dictionary<string, torch.Tensor>
        {
            ["a0"] = torch.tensor(0.3, dtype: torch.float64), ["a1"] = torch.tensor(0.2, dtype: torch.float64),
            ["z0"] = torch.tensor(new[] { 1.5 }, dtype: torch.float64), ["S"] = torch.tensor(1.0, dtype: torch.float64),
        };
        using var g = gradient.Evaluate(env2);
        Assert.Equal((Final(0.3, 0.2 + 1e-6) - Final(0.3, 0.2 - 1e-6)) / 2e-6, g.ToDouble(), 7);
    }

    [Fact]
    public void MatrixExponentialAndItsGradientEqualAutograd()
    {
        // f = sum(z e^{c A}) for a scalar c and a square A; its VJP goes through the exponential's Fréchet derivative.
        var e = Symbolic.Sum(Symbolic.MatMul(Symbolic.Tensor("z"), Symbolic.MatrixExp(Symbolic.Scalar("c") * Symbolic.Tensor("A"))));
        var g = new torch.Generator(9);
        using var z = torch.randn(new long[] { 2, 3 }, dtype: torch.float64, generator: g);
        using var a = (torch.randn(new long[] { 3, 3 }, dtype: torch.float64, generator: g) * 0.5).requires_grad_(true);
        using var c = torch.tensor(0.7, dtype: torch.float64).requires_grad_(true);
        var env = new Dictionary<string, torch.Tensor> { ["z"] = z, ["A"] = a, ["c"] = c };
        using var byTorch = z.matmul((c * a).matrix_exp()).sum();
        using var value = e.Evaluate(env);
        Assert.Equal(byTorch.ToDouble(), value.ToDouble(), 12);
        var grads = torch.autograd.grad(new[] { byTorch }, new[] { a, c });
        var vjp = e.Vjp(1.0);
        using var dA = vjp["A"].Evaluate(env);
        using var dc = vjp["c"].Evaluate(env);
        var expected = grads[0].data<double>().ToArray();
        var actual = dA.detach().data<double>().ToArray();
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 10);
        Assert.Equal(grads[1].ToDouble(), dc.ToDouble(), 10);
    }

    [Fact]
    public void StackedParametersGetCorollary2sPerIntervalIntegral()
    {
        var z = Symbolic.Tensor("z");
        var theta = Symbolic.Scalar("theta");
        var derivation = SymbolicDerivation.Derive(theta * z + Symbolic.Sin(z), "z", new[] { "theta" });
        var lines = derivation.ToLatex(Array.Empty<string>(), new[] { "theta" });
        Assert.Equal("\\frac{dL}{d\\theta_i} = \\int_{s_i}^{s_{i+1}} \\sum \\left(a \\odot z\\right)\\, ds \\quad (\\theta(s) = \\theta_i \\text{ on } [s_i, s_{i+1}))", lines[^1]);
        Assert.Throws<ArgumentNullException>(() => derivation.ToLatex(null!, new[] { "theta" }));
    }
}
