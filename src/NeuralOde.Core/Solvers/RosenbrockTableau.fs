namespace NeuralOde.Core

open System
open NeuralOde.Core.Internal

/// A Rosenbrock (linearly implicit) method as data, in the form of Hairer & Wanner ("Solving ODEs II", §IV.7,
/// eq. (7.4')) whose variables u_i = Σ_{j≤i} γ_ij k_j avoid products by the Jacobian J:
/// (1/(hγ) I − J) u_i = f(t + α_i h, y + Σ_{j<i} a_ij u_j) + Σ_{j<i} (c_ij / h) u_j + γ_i h ∂f/∂t,
/// y1 = y + Σ m_i u_i, error Σ e_i u_i with e = m − m̂ (solution weights minus embedded weights). One matrix per step,
/// no Newton iteration. Build values with <see cref="RosenbrockTableau.create"/> (or from the published form, with
/// <see cref="RosenbrockTableau.ofGammaForm"/>), which checks the order conditions.
type RosenbrockTableau =
    { /// Short name, e.g. "rodas4".
      Name: string
      /// Order of the solution y1.
      Order: int
      /// Order of the embedded solution (the error estimate).
      EmbeddedOrder: int
      /// The diagonal γ = γ_ii of the method's Γ (γ > 0).
      Gamma: float
      /// The transformed stage coefficients a_ij; row i has i entries.
      A: float[][]
      /// The transformed coefficients c_ij of the earlier stages' u_j; row i has i entries.
      C: float[][]
      /// The nodes α_i: stage i evaluates f at t + α_i h.
      Nodes: float[]
      /// The weights γ_i = Σ_{j≤i} γ_ij of h ∂f/∂t in each stage (non-autonomous fields).
      TimeWeights: float[]
      /// The solution weights m_i.
      M: float[]
      /// The error weights e_i = m_i − m̂_i.
      E: float[] }

    /// Number of stages.
    member r.Stages = r.M.Length

/// Building Rosenbrock tableaux: `create` checks shapes, finiteness and the order conditions.
module RosenbrockTableau =
    /// Tolerance of the order conditions: published coefficients carry about 16 digits.
    let private tol = 1e-10

    /// The inverse of a lower-triangular matrix with a non-zero diagonal (forward substitution, column by column).
    let private invertLower (l: float[][]) =
        let n = l.Length
        let inv = Array.init n (fun _ -> Array.zeroCreate<float> n)
        for col in 0 .. n - 1 do
            for i in col .. n - 1 do
                let mutable s = if i = col then 1.0 else 0.0
                for k in col .. i - 1 do s <- s - l[i][k] * inv[k][col]
                inv[i][col] <- s / l[i][i]
        inv

    /// The full square matrix of a strictly lower-triangular one given by rows (row i has i entries), plus `diagonal`.
    let private square (rows: float[][]) (diagonal: float) =
        let n = rows.Length
        Array.init n (fun i -> Array.init n (fun j -> if j < i then rows[i][j] elif j = i then diagonal else 0.0))

    let private times (x: float[][]) (y: float[][]) =
        Array.init x.Length (fun i -> Array.init y[0].Length (fun j -> Seq.sum (seq { for k in 0 .. y.Length - 1 -> x[i][k] * y[k][j] })))

    let private rowTimes (v: float[]) (y: float[][]) = Array.init y[0].Length (fun j -> Seq.sum (seq { for k in 0 .. v.Length - 1 -> v[k] * y[k][j] }))

    let private strictRows (m: float[][]) = Array.init m.Length (fun i -> Array.sub m[i] 0 i)

    /// The published (untransformed) form of a tableau: the stage coefficients α_ij (strictly lower, full square), Γ
    /// (lower, diagonal γ), and the weights b, b̂ of k_i — by Γ = (diag(1/γ) − C)⁻¹, α = aΓ, b = mΓ (§IV.7).
    let internal gammaForm (r: RosenbrockTableau) =
        let gammaInverse = square (r.C |> Array.map (Array.map (fun v -> -v))) (1.0 / r.Gamma)
        let g = invertLower gammaInverse
        let alpha = times (square r.A 0.0) g
        alpha, g, rowTimes r.M g, rowTimes (Array.map2 (-) r.M r.E) g

    /// The order conditions of a Rosenbrock method up to order 4 (Hairer & Wanner, Table IV.7.1) for weights w, with
    /// β_ij = α_ij + γ_ij (j < i), β'_i = Σ_j β_ij, α_i = Σ_j α_ij: each as (order, what, residual).
    let private conditions (gamma: float) (alpha: float[][]) (g: float[][]) (w: float[]) =
        let s = w.Length
        let beta = Array.init s (fun i -> Array.init s (fun j -> if j < i then alpha[i][j] + g[i][j] else 0.0))
        let betaSum = beta |> Array.map Array.sum
        let nodes = alpha |> Array.map Array.sum
        let dot (x: float[]) (y: float[]) = Array.fold2 (fun acc a b -> acc + a * b) 0.0 x y
        let apply (m: float[][]) (v: float[]) = m |> Array.map (fun row -> dot row v)
        let sq = nodes |> Array.map (fun a -> a * a)
        [ 1, "Σ b_i = 1", dot w (Array.create s 1.0) - 1.0
          2, "Σ b_i β'_i = 1/2 − γ", dot w betaSum - (0.5 - gamma)
          3, "Σ b_i α_i² = 1/3", dot w sq - 1.0 / 3.0
          3, "Σ b_i β_ij β'_j = 1/6 − γ + γ²", dot w (apply beta betaSum) - (1.0 / 6.0 - gamma + gamma * gamma)
          4, "Σ b_i α_i³ = 1/4", dot w (Array.map2 (*) sq nodes) - 0.25
          4, "Σ b_i α_i α_ij β'_j = 1/8 − γ/3", dot (Array.map2 (*) w nodes) (apply alpha betaSum) - (0.125 - gamma / 3.0)
          4, "Σ b_i β_ij α_j² = 1/12 − γ/3", dot w (apply beta sq) - (1.0 / 12.0 - gamma / 3.0)
          4, "Σ b_i β_ij β_jk β'_k = 1/24 − γ/2 + 3γ²/2 − γ³",
             dot w (apply beta (apply beta betaSum)) - (1.0 / 24.0 - gamma / 2.0 + 1.5 * gamma * gamma - gamma * gamma * gamma) ]

    /// Builds a tableau from the transformed coefficients (as Hairer's RODAS code gives them) and checks it: every
    /// coefficient is finite, γ is positive, the shapes agree (s stages; row i of a and c has i entries), the nodes
    /// are the row sums of α = aΓ, the time weights those of Γ, and the solution weights meet the order conditions
    /// up to `order` and the embedded weights m − e up to `embeddedOrder` (both checked up to order 4). Raises
    /// ArgumentException naming the failing coefficient or condition.
    let create (name: string) (order: int) (embeddedOrder: int) (gamma: float) (nodes: float[]) (timeWeights: float[])
               (a: float[][]) (c: float[][]) (m: float[]) (e: float[]) : RosenbrockTableau =
        let fail (why: string) = raise (ArgumentException($"Rosenbrock tableau '{name}' is inconsistent: {why}."))
        let finite (argument: string) (label: int -> string) =
            Guard.finiteEntries argument label $"every coefficient of Rosenbrock tableau '{name}' must be a finite number"
        if not (Double.IsFinite gamma && gamma > 0.0) then fail $"the diagonal γ = {gamma} must be a positive number"
        finite "nodes" (fun i -> $"α[{i}]") nodes
        finite "timeWeights" (fun i -> $"γ[{i}]") timeWeights
        a |> Array.iteri (fun i row -> finite "a" (fun j -> $"a[{i}][{j}]") row)
        c |> Array.iteri (fun i row -> finite "c" (fun j -> $"c[{i}][{j}]") row)
        finite "m" (fun i -> $"m[{i}]") m
        finite "e" (fun i -> $"e[{i}]") e
        let s = m.Length
        if s = 0 then fail "it has no stages"
        for what, length in [ "the nodes α", nodes.Length; "the time weights γ_i", timeWeights.Length; "a", a.Length; "c", c.Length; "e", e.Length ] do
            if length <> s then fail $"{what} has {length} entries for {s} stages"
        for what, rows in [ "a", a; "c", c ] do
            rows |> Array.iteri (fun i row -> if row.Length <> i then fail $"row {i} of {what} has {row.Length} entries, expected {i}")
        let r = { Name = name; Order = order; EmbeddedOrder = embeddedOrder; Gamma = gamma; A = a; C = c; Nodes = nodes; TimeWeights = timeWeights; M = m; E = e }
        let alpha, g, b, bHat = gammaForm r
        for i in 0 .. s - 1 do
            let ai, gi = Array.sum alpha[i], Array.sum g[i]
            if abs (ai - nodes[i]) > tol then fail $"α[{i}] = {nodes[i]}, but the stage coefficients α_ij sum to {ai}"
            if abs (gi - timeWeights[i]) > tol then fail $"γ[{i}] = {timeWeights[i]}, but row {i} of Γ sums to {gi}"
        for weights, wanted, what in [ b, order, "solution"; bHat, embeddedOrder, "embedded" ] do
            for p, condition, residual in conditions gamma alpha g weights do
                if p <= wanted && abs residual > tol then
                    fail $"the {what} weights miss the order-{p} condition {condition} by {residual:G3} (order {wanted} claimed)"
        r

    /// Builds a tableau from the published form (α_ij strictly lower by rows, γ_ij strictly lower by rows with the
    /// diagonal γ, the weights b and b̂ of the k_i): u = Γk gives a = αΓ⁻¹, c = diag(1/γ) − Γ⁻¹, m = bΓ⁻¹, m̂ = b̂Γ⁻¹;
    /// then `create` checks it.
    let ofGammaForm (name: string) (order: int) (embeddedOrder: int) (gamma: float) (alpha: float[][]) (gammas: float[][])
                    (b: float[]) (bHat: float[]) : RosenbrockTableau =
        let s = b.Length
        if alpha.Length <> s || gammas.Length <> s || bHat.Length <> s then
            raise (ArgumentException($"Rosenbrock tableau '{name}': α has {alpha.Length} rows, Γ {gammas.Length}, b̂ {bHat.Length} entries for {s} weights b; they must agree."))
        let full = square alpha 0.0
        let gi = invertLower (square gammas gamma)
        let a = strictRows (times full gi)
        let c = strictRows (Array.init s (fun i -> Array.init s (fun j -> (if i = j then 1.0 / gamma else 0.0) - gi[i][j])))
        let m = rowTimes b gi
        let e = Array.map2 (-) m (rowTimes bHat gi)
        create name order embeddedOrder gamma (full |> Array.map Array.sum) (square gammas gamma |> Array.map Array.sum) a c m e
