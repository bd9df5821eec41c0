namespace NeuralOde;

/// <summary>
/// A finite basis ψ_1 … ψ_m on the depth domain [0, S] for Galerkin parameters θ(s) = Σ_j α_j ψ_j(s). Get one from
/// <see cref="Bases"/>.
/// </summary>
public sealed class Basis
{
    internal Basis(Core.Basis value) => Value = value;

    internal Core.Basis Value { get; }

    /// <summary>"fourier", "polynomial", "chebyshev" or "legendre".</summary>
    public string Name => Value.Name;

    /// <summary>Number of functions m.</summary>
    public int Terms => Value.Terms;

    /// <summary>Right end S of the depth domain.</summary>
    public double Domain => Value.Domain;

    /// <summary>ψ_j(s).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="s"/> lies outside [0, <see cref="Domain"/>].</exception>
    public double[] Values(double s) => Core.BasisModule.valuesAt(Value, s);

    /// <summary>ψ_j'(s).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException"><paramref name="s"/> lies outside [0, <see cref="Domain"/>].</exception>
    public double[] Derivatives(double s) { Core.BasisModule.valuesAt(Value, s); return Value.Derivatives.Invoke(s); }

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
}
