using System;
using Microsoft.FSharp.Core;

namespace NeuralOde;

/// <summary>
/// A finite basis ψ_1 … ψ_m on the depth domain [0, S] for Galerkin parameters θ(s) = Σ_j α_j ψ_j(s). Get one from
/// <see cref="Bases"/>, or define your own with the public constructor.
/// </summary>
public sealed class Basis
{
    internal Basis(Core.Basis value) => Value = value;

    /// <summary>
    /// A basis of your own: <paramref name="terms"/> functions on [0, <paramref name="domain"/>] given by closed-form
    /// values ψ_j(s), derivatives ψ_j'(s) (used for gradients in a trainable dilation and shift) and integrals
    /// ∫_0^s ψ_j. Each function must return <paramref name="terms"/> numbers; that is checked at every call, and an
    /// <see cref="ArgumentException"/> names the function, the depth and the count it returned.
    /// </summary>
    /// <param name="name">A name for messages, e.g. "hat".</param>
    /// <param name="terms">Number of functions m (1 to 100000).</param>
    /// <param name="domain">Right end S of the depth domain (finite, &gt; 0).</param>
    /// <param name="values">s ↦ [ψ_1(s), …, ψ_m(s)].</param>
    /// <param name="derivatives">s ↦ [ψ_1'(s), …, ψ_m'(s)].</param>
    /// <param name="integrals">s ↦ [∫_0^s ψ_1, …, ∫_0^s ψ_m].</param>
    /// <param name="extrapolates">Whether the formulas hold on the whole real line: a Galerkin layer with trainable
    /// dilation and shift then evaluates them at transformed depths outside [0, S]; when false (the default) it
    /// refuses such depths.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="terms"/> or <paramref name="domain"/> is out of range.</exception>
    /// <exception cref="ArgumentNullException">A function is null.</exception>
    public Basis(string name, int terms, double domain, Func<double, double[]> values, Func<double, double[]> derivatives,
                 Func<double, double[]> integrals, bool extrapolates = false)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(derivatives);
        ArgumentNullException.ThrowIfNull(integrals);
        var basis = Core.BasisModule.custom(name, terms, domain, FuncConvert.FromFunc(values), FuncConvert.FromFunc(derivatives),
                                            FuncConvert.FromFunc(integrals));
        Value = extrapolates
            ? new Core.Basis(basis.Name, basis.Terms, basis.Domain, basis.Values, basis.Derivatives, basis.Integrals,
                             basis.OrthogonalityWeight, basis.Norms, true)
            : basis;
    }

    internal Core.Basis Value { get; }

    /// <summary>"fourier", "polynomial", "chebyshev", "legendre", "gaussianrbf", "vanillarbf", "multiquadricrbf", or a
    /// custom basis' name.</summary>
    public string Name => Value.Name;

    /// <summary>Number of functions m.</summary>
    public int Terms => Value.Terms;

    /// <summary>Right end S of the depth domain.</summary>
    public double Domain => Value.Domain;

    /// <summary>Whether the basis may be evaluated outside [0, S] (true for every built-in basis; see the
    /// constructor).</summary>
    public bool Extrapolates => Value.Extrapolates;

    /// <summary>ψ_j(s).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="s"/> lies outside [0, <see cref="Domain"/>].</exception>
    public double[] Values(double s) => Core.BasisModule.valuesAt(Value, s);

    /// <summary>ψ_j'(s).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="s"/> lies outside [0, <see cref="Domain"/>].</exception>
    public double[] Derivatives(double s) => Core.BasisModule.derivativesAt(Value, s);

    /// <summary>∫_0^s ψ_j.</summary>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="s"/> lies outside [0, <see cref="Domain"/>].</exception>
    public double[] Integrals(double s) { Core.BasisModule.valuesAt(Value, s); return Value.Integrals.Invoke(s); }

    /// <inheritdoc />
    public override string ToString() => Value.ToString();
}

/// <summary>The bases for Galerkin (spectral) parameters, each with closed-form values, derivatives and integrals.</summary>
public static class Bases
{
    /// <summary>1, cos(2πks/S), sin(2πks/S) for k = 1..<paramref name="harmonics"/>: 2K + 1 orthogonal terms.</summary>
    public static Basis Fourier(int harmonics, double domain = 1.0) => new(Core.BasisModule.fourier(harmonics, domain));

    /// <summary>Monomials (s/S)^j, j = 0..terms−1.</summary>
    public static Basis Polynomial(int terms, double domain = 1.0) => new(Core.BasisModule.polynomial(terms, domain));

    /// <summary>Chebyshev polynomials T_j(2s/S − 1).</summary>
    public static Basis Chebyshev(int terms, double domain = 1.0) => new(Core.BasisModule.chebyshev(terms, domain));

    /// <summary>Legendre polynomials P_j(2s/S − 1), orthogonal with weight 1.</summary>
    public static Basis Legendre(int terms, double domain = 1.0) => new(Core.BasisModule.legendre(terms, domain));

    /// <summary>torchdyn's GaussianRBF: ψ_k(s) = exp(−(a_k (s − c))²), a_k = n_k/ε, n_k = k·m/(m − 1), k = 0..m−1, all
    /// centred at <paramref name="centre"/> c with scale <paramref name="scale"/> ε (torchdyn's defaults 0 and 2).</summary>
    public static Basis GaussianRbf(int terms, double domain = 1.0, double centre = 0.0, double scale = 2.0) =>
        new(Core.BasisModule.gaussianRbfWith(centre, scale, terms, domain));

    /// <summary>torchdyn's MultiquadRBF: ψ_k(s) = 1 + √(1 + (a_k (s − c))²), a_k = n_k/ε, n_k = k·m/(m − 1) (torchdyn's
    /// defaults c = 0, ε = 2).</summary>
    public static Basis MultiquadricRbf(int terms, double domain = 1.0, double centre = 0.0, double scale = 2.0) =>
        new(Core.BasisModule.multiquadricRbfWith(centre, scale, terms, domain));

    /// <summary>torchdyn's VanillaRBF: ψ_k(s) = a_k |s − c|, a_k = n_k/ε, n_k = k·m/(m − 1) (ψ_0 ≡ 0; torchdyn's
    /// defaults c = 0, ε = 2).</summary>
    public static Basis VanillaRbf(int terms, double domain = 1.0, double centre = 0.0, double scale = 2.0) =>
        new(Core.BasisModule.vanillaRbfWith(centre, scale, terms, domain));
}
