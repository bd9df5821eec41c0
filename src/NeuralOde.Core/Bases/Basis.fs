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
      Norms: float[] option }

    override b.ToString() = $"{b.Name}({b.Terms} terms on [0, {b.Domain}])"

/// The bases (Fourier, polynomial, Chebyshev, Legendre) and their evaluation on tensors of depths.
module Basis =
    /// ψ(s), refusing depths outside the domain [0, S] (up to 1e-9·S of rounding): a basis fitted on [0, S] would
    /// extrapolate there without a word.
    let valuesAt (basis: Basis) (s: float) : float[] =
        let slack = 1e-9 * basis.Domain
        if System.Double.IsNaN s || s < -slack || s > basis.Domain + slack then
            raise (ArgumentOutOfRangeException("depth", s, $"depth {s} lies outside the {basis.Name} basis' domain [0, {basis.Domain}]; make the basis' domain cover the block's depth span."))
        basis.Values (min basis.Domain (max 0.0 s))

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
          Norms = Some(Array.init m (fun j -> if j = 0 then domain else domain / 2.0)) }

    /// Monomials (s/S)^j, j = 0..m−1 (torchdyn's `PolyExpansion` with integer degrees). Not orthogonal.
    let polynomial (terms: int) (domain: float) =
        check terms domain
        { Name = "polynomial"; Terms = terms; Domain = domain
          Values = fun s -> Array.init terms (fun j -> (s / domain) ** float j)
          Derivatives = fun s -> Array.init terms (fun j -> if j = 0 then 0.0 else float j / domain * (s / domain) ** float (j - 1))
          Integrals = fun s -> Array.init terms (fun j -> domain * (s / domain) ** float (j + 1) / float (j + 1))
          OrthogonalityWeight = None
          Norms = None }

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
          Norms = Some(Array.init terms (fun j -> if j = 0 then Math.PI * domain / 2.0 else Math.PI * domain / 4.0)) }

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
          Norms = Some(Array.init terms (fun j -> domain / float (2 * j + 1))) }

    /// Finds a basis constructor by name.
    let byName (name: string) : int -> float -> Basis =
        match name.ToLowerInvariant() with
        | "fourier" -> fourier
        | "polynomial" -> polynomial
        | "chebyshev" -> chebyshev
        | "legendre" -> legendre
        | other -> raise (ArgumentException($"Unknown basis '{other}'. Known bases: fourier, polynomial, chebyshev, legendre.", "name"))
