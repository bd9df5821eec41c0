namespace NeuralOde.Core

open System
open NeuralOde.Core.Internal

/// How a step's solution is evaluated between its two ends.
[<RequireQualifiedAccess>]
type DenseOutput =
    /// The method's own continuous extension: y(t + θh) = y + h Σ_i b_i(θ) k_i, with the weights b_i(θ) given here.
    /// The weights may have one entry more than there are stages: it multiplies f(t + h, y1).
    | Continuous of weights: (float -> float[])
    /// Cubic Hermite interpolation on y, f(y) at both ends of the step (third-order accurate).
    | Hermite

/// An explicit Runge–Kutta method as data (Butcher 2016, "Numerical Methods for ODEs", §23):
/// stages k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j), solution y1 = y + h Σ b_i k_i and, for adaptive methods,
/// an error estimate err = h Σ e_i k_i with e = b − b̂ (solution weights minus embedded weights).
/// Build values with <see cref="ButcherTableau.create"/>, which checks the consistency conditions.
type ButcherTableau =
    { /// Short name, e.g. "dopri5".
      Name: string
      /// Order of the solution y1.
      Order: int
      /// Order of the embedded solution, when there is an error estimate.
      EmbeddedOrder: int option
      /// Nodes c_i.
      C: float[]
      /// Lower-triangular coefficients a_ij; row i has i entries.
      A: float[][]
      /// Solution weights b_i.
      B: float[]
      /// Error weights e_i = b_i − b̂_i, when the method is adaptive.
      E: float[] option
      /// How the solution is evaluated inside a step.
      Dense: DenseOutput
      /// Where the coefficients come from.
      Citation: string
      /// The diagonal a_ii = γ of stages 2 … s of a singly diagonally implicit method with an explicit first stage
      /// (ESDIRK): stage i solves z_i = y + h Σ_{j<i} a_ij k_j + hγ f(t + c_i h, z_i). 0 for explicit methods.
      Gamma: float
      /// How an implicit method's stages are solved (ignored by explicit methods); a Rosenbrock method uses its
      /// Structure and Jacobian only (it has no Newton iteration).
      Newton: NewtonOptions
      /// For the automatic stiffness switcher (Solvers.autoSwitch): the explicit and implicit methods it switches
      /// between and its rule; None for every other method.
      Switching: AutoSwitching option
      /// The explicit part's strictly lower coefficients a^E_ij (row i has i entries) of an additive (IMEX) method,
      /// whose A and γ are then its implicit part (Kennedy & Carpenter 2003): on a split problem f = f_E + f_I stage i
      /// is z_i = y + h Σ_{j<i} (a^E_ij f_E(z_j) + a_ij f_I(z_j)) + hγ f_I(z_i), and both parts share c, b and e.
      /// None for every other method.
      ExplicitA: float[][] option
      /// A Rosenbrock (linearly implicit) method's own coefficients; A, B and C above then hold its explicit part
      /// (α_ij, the weights b of k_i and the nodes α_i: the method with J = 0) and Gamma its diagonal γ. None for
      /// every other method.
      Rosenbrock: RosenbrockTableau option }

    /// Number of stages.
    member t.Stages = t.C.Length
    /// First Same As Last: the last stage is evaluated at the solution (c = 1 and the last row of A equals b),
    /// so it is the first stage of the next step. Derived from the coefficients, not declared.
    member t.Fsal =
        let s = t.Stages
        s > 1 && t.C[s - 1] = 1.0 && t.A[s - 1].Length = s - 1
        && Array.forall2 (fun a b -> abs (a - b) < 1e-15) t.A[s - 1] t.B[0 .. s - 2] && t.B[s - 1] = 0.0
    /// True when the method has an embedded error estimate.
    member t.IsAdaptive = t.E.IsSome
    /// The order used by step-size control: min(order, embedded order).
    member t.ErrorOrder = match t.EmbeddedOrder with Some p -> min p t.Order | None -> t.Order
    /// True for an implicit method: an ESDIRK or IMEX method, whose stages 2 … s are solved by a Newton iteration, or
    /// a Rosenbrock method (IsRosenbrock), which solves one linear system per stage. Also true for the stiffness
    /// switcher, which may take its implicit method's steps.
    member t.IsImplicit = t.Gamma <> 0.0
    /// True for an additive implicit–explicit (IMEX) method: it has an explicit part for a split problem's f_E.
    member t.IsImex = t.ExplicitA.IsSome
    /// True for a Rosenbrock (linearly implicit) method: one LU factorisation of (1/(hγ)) I − J per step.
    member t.IsRosenbrock = t.Rosenbrock.IsSome

    override t.ToString() = t.Name

/// The rule of the automatic stiffness switcher (Solvers.autoSwitch; SciML's AutoSwitch, as in
/// `AutoTsit5(Rosenbrock23())`): it steps with the explicit method while the problem is not stiff, estimating the
/// Jacobian's largest eigenvalue ρ from two of its stages evaluated at the same time (Hairer & Wanner, "Solving ODEs
/// II", §IV.2), and hands over to the implicit method once hρ exceeds Threshold × the explicit method's stability
/// boundary on the negative real axis for StiffSteps accepted steps; with the implicit method it estimates ρ by power
/// iteration on f and hands back once hρ has stayed below that for NonStiffSteps steps in a row.
and AutoSwitching =
    { /// The method for non-stiff stretches (explicit, adaptive, with two stages at one node).
      Explicit: ButcherTableau
      /// The method for stiff stretches (implicit, adaptive).
      Implicit: ButcherTableau
      /// The explicit method's stability boundary: the largest x with |R(−x')| ≤ 1 for all x' in [0, x].
      StabilityBoundary: float
      /// The two stages (i, j), i < j, of the explicit method with c_i = c_j whose difference estimates ρ.
      StagePair: int * int
      /// The fraction of the boundary above which hρ counts as stiff, below which as not stiff (a step controller at
      /// the stability limit keeps hρ just under the boundary).
      Threshold: float
      /// Accepted steps with hρ above the threshold (counted, three non-stiff ones in a row reset the count) before
      /// the switch to the implicit method.
      StiffSteps: int
      /// Accepted steps in a row with hρ below the threshold before the switch back to the explicit method.
      NonStiffSteps: int }

/// Building tableaux: `create` checks the consistency conditions.
module ButcherTableau =
    /// Tolerance of the consistency checks: the coefficients of some methods are given as rational approximations.
    let private tol = 1e-12

    /// Points inside the step where a continuous extension's weights are checked (a solve evaluates them anywhere in
    /// (0, 1), where a NaN would pass silently into the solution at the output times).
    let private interior = [ 0.25; 0.5; 0.75 ]

    /// Builds a tableau and checks it: every coefficient is finite (NaN fails every comparison, so it would pass the
    /// conditions below), shapes agree, row sums of A equal c, the weights b sum to one, the error weights sum to
    /// zero, and a continuous extension reproduces b at θ = 1, is 0 at θ = 0 and has finite weights inside the step.
    /// Raises ArgumentException naming the failing coefficient (a[2][1] is NaN) or condition.
    let create name order embeddedOrder (c: float[]) (a: float[][]) (b: float[]) (e: float[] option) dense citation =
        let fail (why: string) = raise (ArgumentException($"Butcher tableau '{name}' is inconsistent: {why}."))
        let finite (argument: string) (label: int -> string) =
            Guard.finiteEntries argument label $"every coefficient of Butcher tableau '{name}' must be a finite number"
        finite "c" (fun i -> $"c[{i}]") c
        a |> Array.iteri (fun i row -> finite "a" (fun j -> $"a[{i}][{j}]") row)
        finite "b" (fun i -> $"b[{i}]") b
        e |> Option.iter (finite "e" (fun i -> $"e[{i}]"))
        let s = c.Length
        if s = 0 then fail "it has no stages"
        if a.Length <> s then fail $"A has {a.Length} rows for {s} stages"
        if b.Length <> s then fail $"b has {b.Length} weights for {s} stages"
        a |> Array.iteri (fun i row ->
            if row.Length <> i then fail $"row {i} of A has {row.Length} entries, expected {i}"
            let sum = Array.sum row
            if abs (sum - c[i]) > tol then fail $"row {i} of A sums to {sum}, but c[{i}] = {c[i]}")
        let bs = Array.sum b
        if abs (bs - 1.0) > tol then fail $"b sums to {bs}, not 1"
        match e, embeddedOrder with
        | Some e, Some _ ->
            if e.Length <> s then fail $"e has {e.Length} weights for {s} stages"
            let es = Array.sum e
            if abs es > tol then fail $"the error weights sum to {es}, not 0"
        | None, None -> ()
        | _ -> fail "an embedded order and error weights must be given together"
        match dense with
        | DenseOutput.Continuous w ->
            let w1, w0 = w 1.0, w 0.0
            if w1.Length <> s && w1.Length <> s + 1 then fail $"the continuous extension has {w1.Length} weights for {s} stages"
            for theta in 0.0 :: interior @ [ 1.0 ] do
                let weights = w theta
                if weights.Length <> w1.Length then fail $"the continuous extension has {weights.Length} weights at θ = {theta} but {w1.Length} at θ = 1"
                finite "dense" (fun i -> $"the continuous extension's b_{i}({theta})") weights
            let bExtended = if w1.Length = s then b else Array.append b [| 0.0 |]
            Array.iteri (fun i wi -> if abs (wi - bExtended[i]) > 1e-10 then fail $"the continuous extension's b_{i}(1) = {wi}, not b_{i} = {bExtended[i]}") w1
            if Array.exists (fun x -> abs x > 1e-14) w0 then fail "the continuous extension is not zero at θ = 0"
        | DenseOutput.Hermite -> ()
        { Name = name; Order = order; EmbeddedOrder = embeddedOrder; C = c; A = a; B = b; E = e; Dense = dense; Citation = citation
          Gamma = 0.0; Newton = NewtonOptions.defaults; Switching = None; ExplicitA = None; Rosenbrock = None }

    /// Builds a singly diagonally implicit method with an explicit first stage (ESDIRK) and checks it: `a` holds the
    /// strictly lower part (row i has i entries), the diagonal is 0 for the first stage and γ for the others, so row
    /// i of the full matrix sums to c_i (Σ_{j<i} a_ij + γ = c_i, c_0 = 0); b sums to one, the error weights
    /// e = b − b̂ to zero, and γ is positive. Solutions inside a step use cubic Hermite interpolation. Raises
    /// ArgumentException naming the failing condition.
    let createEsdirk name order embeddedOrder (gamma: float) (c: float[]) (a: float[][]) (b: float[]) (e: float[]) citation =
        let fail (why: string) = raise (ArgumentException($"Butcher tableau '{name}' is inconsistent: {why}."))
        if not (Double.IsFinite gamma && gamma > 0.0) then fail $"the diagonal γ = {gamma} must be a positive number"
        if c.Length = 0 || c[0] <> 0.0 then fail "the first stage of an ESDIRK method is explicit: c[0] must be 0"
        // The explicit checks on the row sums less the diagonal: Σ_{j<i} a_ij = c_i − γ for i ≥ 1.
        let shifted = c |> Array.mapi (fun i ci -> if i = 0 then ci else ci - gamma)
        let t = create name order (Some embeddedOrder) shifted a b (Some e) DenseOutput.Hermite citation
        { t with C = c; Gamma = gamma }

    /// Builds an additive implicit–explicit (IMEX) method, an explicit method and an ESDIRK method sharing the nodes
    /// c, the weights b and the error weights e (Kennedy & Carpenter 2003, §2), and checks both parts:
    /// the implicit part (strictly lower `implicitA` and the diagonal γ) as createEsdirk does, the explicit part
    /// (strictly lower `explicitA`, zero diagonal) as create does — each row sums to its node. Raises ArgumentException
    /// naming the part and the failing condition.
    let createImex name order embeddedOrder (gamma: float) (c: float[]) (explicitA: float[][]) (implicitA: float[][]) (b: float[]) (e: float[]) citation =
        let t = createEsdirk name order embeddedOrder gamma c implicitA b e citation
        create $"{name} (explicit part)" order (Some embeddedOrder) c explicitA b (Some e) DenseOutput.Hermite citation |> ignore
        { t with ExplicitA = Some explicitA }

    /// A Rosenbrock method (checked by RosenbrockTableau.create) as a solver: its explicit part (α_ij, b, b − b̂, the
    /// nodes α_i) passes `create`'s checks, Gamma = γ makes it implicit, and solutions inside a step use cubic
    /// Hermite interpolation.
    let createRosenbrock (r: RosenbrockTableau) citation =
        let alpha, _, b, bHat = RosenbrockTableau.gammaForm r
        let rows = alpha |> Array.mapi (fun i row -> Array.sub row 0 i)
        let t = create r.Name r.Order (Some r.EmbeddedOrder) r.Nodes rows b (Some(Array.map2 (-) b bHat)) DenseOutput.Hermite citation
        { t with Gamma = r.Gamma; Rosenbrock = Some r }
