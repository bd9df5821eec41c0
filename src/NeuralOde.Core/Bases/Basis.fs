namespace NeuralOde.Core

open System

/// A finite basis ψ_1 … ψ_m of scalar functions on the depth domain [0, S], for Galerkin (spectral) parameters
/// θ(s) = Σ_j α_j ψ_j(s) (Massaroli et al. 2020, Corollary 1). A basis is data: closed-form values, derivatives
/// and antiderivatives, and the weight of the inner product in which it is orthogonal (when it is).
type Basis =
    { /// E.g. "fourier", "legendre".
      Name: string
      /// Number of functions m.
      Terms: int
      /// Right end S of the depth domain [0, S].
      Domain: float
      /// ψ_j(s), j = 1..m.
      Values: float -> float[]
      /// ψ_j'(s).
      Derivatives: float -> float[]
      /// ∫_0^s ψ_j(τ) dτ.
      Integrals: float -> float[]
      /// The weight w(s) of the inner product ∫ ψ_i ψ_j w ds in which the basis is orthogonal; None when it is not.
      OrthogonalityWeight: (float -> float) option
      /// ∫ ψ_j² w ds over the domain, for orthogonal bases.
      Norms: float[] option
      /// Whether Values and Derivatives are closed forms that hold on the whole real line, so they may be evaluated
      /// outside [0, S]: a Galerkin layer with trainable dilation and shift evaluates the basis at the transformed
      /// depth d·s + h, which training moves out of the domain. True for every built-in basis (as torchdyn's, which
      /// extrapolate); a custom basis says so when it is built.
      Extrapolates: bool }

    override b.ToString() = $"{b.Name}({b.Terms} terms on [0, {b.Domain}])"

/// The bases (Fourier, polynomial, Chebyshev, Legendre, torchdyn's radial bases, custom ones) and their evaluation.
module Basis =
    /// The depth s clamped into [0, S], refusing depths outside the domain (up to 1e-9·S of rounding): a basis fitted
    /// on [0, S] would extrapolate there without a word.
    let private inDomain (basis: Basis) (s: float) =
        let slack = 1e-9 * basis.Domain
        if System.Double.IsNaN s || s < -slack || s > basis.Domain + slack then
            raise (ArgumentOutOfRangeException("depth", s, $"depth {s} lies outside the {basis.Name} basis' domain [0, {basis.Domain}]; make the basis' domain cover the block's depth span."))
        min basis.Domain (max 0.0 s)

    /// ψ(s), refusing depths outside the domain [0, S] (up to 1e-9·S of rounding): a basis fitted on [0, S] would
    /// extrapolate there without a word.
    let valuesAt (basis: Basis) (s: float) : float[] = basis.Values (inDomain basis s)

    /// ψ'(s), refusing depths outside the domain [0, S] as `valuesAt` does.
    let derivativesAt (basis: Basis) (s: float) : float[] = basis.Derivatives (inDomain basis s)

    /// ψ(s') and ψ'(s') at a transformed depth s' = d·s + h (a Galerkin layer's trainable dilation d and shift h):
    /// anywhere on the real line when the basis extrapolates (its closed forms hold there), else only inside
    /// [0, S], refusing other depths with a message that says which dilation and shift took it there.
    let transformedAt (basis: Basis) (dilation: float) (shift: float) (s: float) : float[] * float[] =
        let s' = dilation * s + shift
        if Double.IsNaN s' || Double.IsInfinity s' then
            raise (ArgumentOutOfRangeException("depth", s', $"the transformed depth dilation·s + shift = {dilation}·{s} + {shift} is {s'}; the dilation or shift has diverged."))
        if basis.Extrapolates then basis.Values s', basis.Derivatives s'
        else
            let slack = 1e-9 * basis.Domain
            if s' < -slack || s' > basis.Domain + slack then
                raise (ArgumentOutOfRangeException("depth", s', $"the transformed depth dilation·s + shift = {dilation}·{s} + {shift} = {s'} lies outside the {basis.Name} basis' domain [0, {basis.Domain}], and that basis does not extrapolate (its Extrapolates is false). Build the basis with extrapolation if its formulas hold on the whole real line, or widen its domain."))
            let c = min basis.Domain (max 0.0 s')
            basis.Values c, basis.Derivatives c

    let private check (terms: int) (domain: float) =
        Internal.Guard.positiveCount "terms" terms
        if terms > 100_000 then
            raise (ArgumentOutOfRangeException("terms", terms, $"terms must be at most 100000 (each evaluation makes an array of that many values); got {terms}."))
        Internal.Guard.positiveFinite "domain" domain

    /// The Fourier basis on [0, S]: 1, cos(2πks/S), sin(2πks/S) for k = 1..K (m = 2K + 1 terms), orthogonal with
    /// weight 1; norms S, S/2, S/2, ….  (torchdyn 0.2's `FourierExpansion` used frequencies linspace(0, K, K) without
    /// 2π, which are not orthogonal; this is the classical basis.)
    let fourier (harmonics: int) (domain: float) =
        check harmonics domain
        let omega k = 2.0 * Math.PI * float k / domain
        let m = 2 * harmonics + 1
        let build (constant: float -> float) (cosine: int -> float -> float) (sine: int -> float -> float) (s: float) =
            Array.init m (fun j -> if j = 0 then constant s elif j % 2 = 1 then cosine ((j + 1) / 2) s else sine (j / 2) s)
        { Name = "fourier"; Terms = m; Domain = domain
          Values = build (fun _ -> 1.0) (fun k s -> cos (omega k * s)) (fun k s -> sin (omega k * s))
          Derivatives = build (fun _ -> 0.0) (fun k s -> -(omega k) * sin (omega k * s)) (fun k s -> omega k * cos (omega k * s))
          Integrals = build id (fun k s -> sin (omega k * s) / omega k) (fun k s -> (1.0 - cos (omega k * s)) / omega k)
          OrthogonalityWeight = Some(fun _ -> 1.0)
          Norms = Some(Array.init m (fun j -> if j = 0 then domain else domain / 2.0))
          Extrapolates = true }

    /// Monomials (s/S)^j, j = 0..m−1 (torchdyn's `PolyExpansion` with integer degrees). Not orthogonal.
    let polynomial (terms: int) (domain: float) =
        check terms domain
        { Name = "polynomial"; Terms = terms; Domain = domain
          Values = fun s -> Array.init terms (fun j -> (s / domain) ** float j)
          Derivatives = fun s -> Array.init terms (fun j -> if j = 0 then 0.0 else float j / domain * (s / domain) ** float (j - 1))
          Integrals = fun s -> Array.init terms (fun j -> domain * (s / domain) ** float (j + 1) / float (j + 1))
          OrthogonalityWeight = None
          Norms = None
          Extrapolates = true }

    /// Values of a three-term-recurrence family at x for degrees 0..n (n ≥ 0).
    let private recurrence (first: float) (second: float -> float) (next: int -> float -> float -> float -> float) (n: int) (x: float) =
        let v = Array.zeroCreate (max 2 (n + 1))
        v[0] <- first
        v[1] <- second x
        for k in 1 .. n - 1 do v[k + 1] <- next k x v[k] v[k - 1]
        v[0 .. n]

    /// Chebyshev polynomials of the first kind T_j(x), x = 2s/S − 1, j = 0..m−1; orthogonal with weight
    /// 1/√(1 − x²): norms (in s) π S/2 for j = 0 and π S/4 otherwise.
    let chebyshev (terms: int) (domain: float) =
        check terms domain
        let x s = 2.0 * s / domain - 1.0
        let t n x = recurrence 1.0 id (fun _ x a b -> 2.0 * x * a - b) n x
        let u n x = recurrence 1.0 (fun x -> 2.0 * x) (fun _ x a b -> 2.0 * x * a - b) n x
        { Name = "chebyshev"; Terms = terms; Domain = domain
          Values = fun s -> t (terms - 1) (x s)
          // d/ds T_j(x(s)) = j U_{j−1}(x) · 2/S.
          Derivatives = fun s ->
              let us = u (max 0 (terms - 2)) (x s)
              Array.init terms (fun j -> if j = 0 then 0.0 else float j * us[j - 1] * 2.0 / domain)
          // ∫ T_0 = x, ∫ T_1 = x²/2, ∫ T_j = (T_{j+1}/(j+1) − T_{j−1}/(j−1))/2; times S/2, from x(0) = −1.
          Integrals = fun s ->
              let anti (x: float) =
                  let ts = t (terms + 1) x
                  Array.init terms (fun j ->
                      match j with
                      | 0 -> x
                      | 1 -> x * x / 2.0
                      | _ -> (ts[j + 1] / float (j + 1) - ts[j - 1] / float (j - 1)) / 2.0)
              Array.map2 (fun a b -> (a - b) * domain / 2.0) (anti (x s)) (anti -1.0)
          OrthogonalityWeight = Some(fun s -> let v = x s in 1.0 / sqrt (max 1e-300 (1.0 - v * v)))
          Norms = Some(Array.init terms (fun j -> if j = 0 then Math.PI * domain / 2.0 else Math.PI * domain / 4.0))
          Extrapolates = true }

    /// Legendre polynomials P_j(x), x = 2s/S − 1, j = 0..m−1; orthogonal with weight 1, norms S/(2j + 1).
    let legendre (terms: int) (domain: float) =
        check terms domain
        let x s = 2.0 * s / domain - 1.0
        let p n x = recurrence 1.0 id (fun k x a b -> (float (2 * k + 1) * x * a - float k * b) / float (k + 1)) n x
        { Name = "legendre"; Terms = terms; Domain = domain
          Values = fun s -> p (terms - 1) (x s)
          // P_j' = Σ_{k = j−1, j−3, …} (2k + 1) P_k (avoids the 1/(x² − 1) of the usual identity at the ends); ×2/S.
          Derivatives = fun s ->
              let ps = p (max 0 (terms - 1)) (x s)
              Array.init terms (fun j ->
                  let mutable acc = 0.0
                  let mutable k = j - 1
                  while k >= 0 do
                      acc <- acc + float (2 * k + 1) * ps[k]
                      k <- k - 2
                  acc * 2.0 / domain)
          // ∫_{−1}^x P_0 = x + 1, ∫_{−1}^x P_j = (P_{j+1} − P_{j−1})/(2j + 1); ×S/2.
          Integrals = fun s ->
              let ps = p (terms + 1) (x s)
              Array.init terms (fun j ->
                  let v = if j = 0 then x s + 1.0 else (ps[j + 1] - ps[j - 1]) / float (2 * j + 1)
                  v * domain / 2.0)
          OrthogonalityWeight = Some(fun _ -> 1.0)
          Norms = Some(Array.init terms (fun j -> domain / float (2 * j + 1)))
          Extrapolates = true }

    // torchdyn's radial bases (torchdyn/nn/galerkin.py: GaussianRBF, VanillaRBF, MultiquadRBF). Each of its m
    // functions is centred at the same point c, with its own shape a_k = n_k/ε, n_k = k·m/(m − 1) for k = 0..m−1
    // (torchdyn's n_range = linspace(0, m, m)), radius r = |s − c|. torchdyn's defaults: c = 0, ε = 2.

    /// The shapes a_k = n_k/ε, n_k = k·m/(m − 1) (0 alone for m = 1), after checking the arguments.
    let private rbfShapes (terms: int) (domain: float) (centre: float) (scale: float) =
        check terms domain
        Internal.Guard.finite "centre" centre
        Internal.Guard.positiveFinite "scale" scale
        Array.init terms (fun k -> if terms = 1 then 0.0 else float k * float terms / float (terms - 1) / scale)

    /// erf x − erf y without cancellation when x and y lie in the same tail (erfc differences there).
    let private erfDifference (x: float) (y: float) =
        let erf, erfc = MathNet.Numerics.SpecialFunctions.Erf, MathNet.Numerics.SpecialFunctions.Erfc
        if x >= 0.0 && y >= 0.0 then erfc y - erfc x
        elif x <= 0.0 && y <= 0.0 then erfc -x - erfc -y
        else erf x - erf y

    /// torchdyn's `GaussianRBF`: ψ_k(s) = exp(−(a_k (s − c))²), a_k = n_k/ε, n_k = k·m/(m − 1), k = 0..m−1
    /// (ψ_0 ≡ 1); ψ_k' = −2 a_k² (s − c) ψ_k; ∫_0^s ψ_k = √π/(2a_k) (erf(a_k (s − c)) − erf(−a_k c)). Not
    /// orthogonal. torchdyn writes the shape as (n_k − c)/ε, which is a_k at its only working centre c = 0 (its
    /// `adaptive` centres have m + 1 entries against m shapes and do not broadcast); here the centre moves the
    /// functions, not their widths.
    let gaussianRbfWith (centre: float) (scale: float) (terms: int) (domain: float) =
        let a = rbfShapes terms domain centre scale
        { Name = "gaussianrbf"; Terms = terms; Domain = domain
          Values = fun s -> a |> Array.map (fun ak -> let u = ak * (s - centre) in exp (-(u * u)))
          Derivatives = fun s -> a |> Array.map (fun ak -> let u = ak * (s - centre) in -2.0 * ak * u * exp (-(u * u)))
          Integrals = fun s ->
              a |> Array.map (fun ak ->
                  if ak = 0.0 then s
                  else sqrt Math.PI / (2.0 * ak) * erfDifference (ak * (s - centre)) (ak * (0.0 - centre)))
          OrthogonalityWeight = None
          Norms = None
          Extrapolates = true }

    /// `gaussianRbfWith` with torchdyn's defaults: centre c = 0, scale ε = 2.
    let gaussianRbf (terms: int) (domain: float) = gaussianRbfWith 0.0 2.0 terms domain

    /// torchdyn's `VanillaRBF`: ψ_k(s) = a_k |s − c|, a_k = n_k/ε, n_k = k·m/(m − 1), k = 0..m−1 (ψ_0 ≡ 0, as
    /// torchdyn's); ψ_k' = a_k sign(s − c) (0 at s = c, where |·| has no derivative: the subgradient autograd takes);
    /// ∫_0^s ψ_k = a_k (F(s − c) − F(−c)), F(u) = u|u|/2. Not orthogonal.
    let vanillaRbfWith (centre: float) (scale: float) (terms: int) (domain: float) =
        let a = rbfShapes terms domain centre scale
        let anti (u: float) = u * abs u / 2.0
        { Name = "vanillarbf"; Terms = terms; Domain = domain
          Values = fun s -> a |> Array.map (fun ak -> ak * abs (s - centre))
          Derivatives = fun s -> a |> Array.map (fun ak -> ak * float (sign (s - centre)))
          Integrals = fun s -> a |> Array.map (fun ak -> ak * (anti (s - centre) - anti (0.0 - centre)))
          OrthogonalityWeight = None
          Norms = None
          Extrapolates = true }

    /// `vanillaRbfWith` with torchdyn's defaults: centre c = 0, scale ε = 2.
    let vanillaRbf (terms: int) (domain: float) = vanillaRbfWith 0.0 2.0 terms domain

    /// torchdyn's `MultiquadRBF`: ψ_k(s) = 1 + √(1 + (a_k (s − c))²), a_k = n_k/ε, n_k = k·m/(m − 1), k = 0..m−1
    /// (ψ_0 ≡ 2; torchdyn's "1 +" kept); ψ_k' = a_k² (s − c)/√(1 + (a_k (s − c))²); ∫_0^s ψ_k = G(s − c) − G(−c),
    /// G(u) = u + (u √(1 + a_k² u²) + asinh(a_k u)/a_k)/2 (G(u) = 2u for a_k = 0). Not orthogonal.
    let multiquadricRbfWith (centre: float) (scale: float) (terms: int) (domain: float) =
        let a = rbfShapes terms domain centre scale
        let anti (ak: float) (u: float) = if ak = 0.0 then 2.0 * u else u + (u * sqrt (1.0 + ak * ak * u * u) + Math.Asinh(ak * u) / ak) / 2.0
        { Name = "multiquadricrbf"; Terms = terms; Domain = domain
          Values = fun s -> a |> Array.map (fun ak -> let u = ak * (s - centre) in 1.0 + sqrt (1.0 + u * u))
          Derivatives = fun s -> a |> Array.map (fun ak -> let u = ak * (s - centre) in ak * u / sqrt (1.0 + u * u))
          Integrals = fun s -> a |> Array.map (fun ak -> anti ak (s - centre) - anti ak (0.0 - centre))
          OrthogonalityWeight = None
          Norms = None
          Extrapolates = true }

    /// `multiquadricRbfWith` with torchdyn's defaults: centre c = 0, scale ε = 2.
    let multiquadricRbf (terms: int) (domain: float) = multiquadricRbfWith 0.0 2.0 terms domain

    /// A basis of your own: m = `terms` functions on [0, `domain`] given by closed-form values ψ_j(s), derivatives
    /// ψ_j'(s) and integrals ∫_0^s ψ_j (each returning `terms` numbers; checked at every call, the error naming the
    /// function and the depth). Not orthogonal as far as the library knows, and not extrapolated: a Galerkin layer
    /// with trainable dilation and shift refuses transformed depths outside [0, domain] unless you build it
    /// `{ Basis.custom … with Extrapolates = true }` (when the formulas hold on the whole real line).
    let custom (name: string) (terms: int) (domain: float) (values: float -> float[]) (derivatives: float -> float[])
               (integrals: float -> float[]) : Basis =
        if String.IsNullOrWhiteSpace name then
            raise (ArgumentException($"name must name the basis (it appears in messages); got '{name}'.", "name"))
        check terms domain
        let checkedFunction (argument: string) (f: float -> float[]) =
            if isNull (box f) then raise (ArgumentNullException(argument))
            fun (s: float) ->
                match f s with
                | null -> raise (ArgumentException($"The custom basis '{name}': {argument}({s}) returned null; it must return {terms} numbers (terms).", argument))
                | v when v.Length <> terms ->
                    raise (ArgumentException($"The custom basis '{name}': {argument}({s}) returned {v.Length} numbers; it must return {terms} (terms), one per basis function.", argument))
                | v -> v
        { Name = name; Terms = terms; Domain = domain
          Values = checkedFunction "values" values
          Derivatives = checkedFunction "derivatives" derivatives
          Integrals = checkedFunction "integrals" integrals
          OrthogonalityWeight = None
          Norms = None
          Extrapolates = false }

    /// Finds a basis constructor by name (case-insensitive); the radial bases with torchdyn's defaults, under
    /// torchdyn's class names too ("GaussianRBF", "VanillaRBF", "MultiquadRBF").
    let byName (name: string) : int -> float -> Basis =
        if isNull name then raise (ArgumentNullException("name"))
        match name.ToLowerInvariant() with
        | "fourier" -> fourier
        | "polynomial" -> polynomial
        | "chebyshev" -> chebyshev
        | "legendre" -> legendre
        | "gaussianrbf" -> gaussianRbf
        | "vanillarbf" -> vanillaRbf
        | "multiquadricrbf" | "multiquadrbf" -> multiquadricRbf
        | other -> raise (ArgumentException($"Unknown basis '{other}'. Known bases: fourier, polynomial, chebyshev, legendre, gaussianrbf, vanillarbf, multiquadricrbf.", "name"))
