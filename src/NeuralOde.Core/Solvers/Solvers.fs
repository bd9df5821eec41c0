/// The catalogue of solvers: each value is a Butcher tableau (data), solved by the generic Runge–Kutta step.
module NeuralOde.Core.Solvers

open NeuralOde.Core.Tableaux

/// Forward Euler, order 1, fixed step.
let euler = Euler.tableau
/// Explicit midpoint, order 2, fixed step.
let midpoint = Midpoint.tableau
/// Heun (explicit trapezoid), order 2, fixed step.
let heun = Heun.tableau
/// Classical Runge–Kutta, order 4, fixed step.
let rk4 = Rk4.tableau
/// Bogacki–Shampine 3(2), adaptive.
let bosh3 = Bosh3.tableau
/// Dormand–Prince 5(4), adaptive, fourth-order dense output.
let dopri5 = Dopri5.tableau
/// Tsitouras 5(4), adaptive, fourth-order dense output.
let tsit5 = Tsit5.tableau
/// Prince–Dormand 8(7), adaptive.
let dopri8 = Dopri8.tableau

/// Kværnø's ESDIRK 3(2), implicit (L-stable, stiffly accurate), adaptive: for stiff problems at loose tolerances.
let kvaerno3 = Kvaerno3.tableau
/// Kværnø's ESDIRK 4(3), implicit (L-stable, stiffly accurate), adaptive.
let kvaerno4 = Kvaerno4.tableau
/// Kværnø's ESDIRK 5(4), implicit (L-stable, stiffly accurate), adaptive: for stiff problems at tight tolerances.
let kvaerno5 = Kvaerno5.tableau

/// Kennedy & Carpenter's IMEX ARK 3(2) (ARK3(2)4L[2]SA), adaptive: on a split problem (OdeProblem.createSplit) the
/// non-stiff part is treated explicitly and only the stiff part by Newton iterations; on any other problem it is an
/// L-stable, stiffly accurate ESDIRK method for the whole field.
let kenCarp3 = KenCarp3.tableau
/// Kennedy & Carpenter's IMEX ARK 4(3) (ARK4(3)6L[2]SA), adaptive; see kenCarp3.
let kenCarp4 = KenCarp4.tableau
/// Kennedy & Carpenter's IMEX ARK 5(4) (ARK5(4)8L[2]SA), adaptive, for tight tolerances; see kenCarp3.
let kenCarp5 = KenCarp5.tableau
/// Shampine & Reichelt's Rosenbrock 2(3) (MATLAB's ode23s), linearly implicit (L-stable), adaptive: one LU
/// factorisation per step and no Newton iteration; for stiff problems at loose tolerances.
let rosenbrock23 = Rosenbrock23.tableau
/// Hairer & Wanner's RODAS 4(3), linearly implicit (L-stable, stiffly accurate), adaptive: for stiff problems at
/// moderate tolerances.
let rodas4 = Rodas4.tableau

/// Every explicit solver, fixed-step ones first.
let all = [ euler; midpoint; heun; rk4; bosh3; dopri5; tsit5; dopri8 ]

/// The implicit (stiff) solvers, solved on tensors: ESDIRK and IMEX methods with a Newton iteration per stage,
/// Rosenbrock methods with one linear solve per stage.
let implicitSolvers = [ kvaerno3; kvaerno4; kvaerno5; kenCarp3; kenCarp4; kenCarp5; rosenbrock23; rodas4 ]

/// The automatic stiffness switcher (SciML's AutoSwitch, `AutoTsit5(Rosenbrock23())`): steps with `nonStiff` (an
/// explicit adaptive method with two stages at one node, as dopri5 and tsit5 have) while the problem is not stiff,
/// and with `stiff` (an implicit adaptive method) where it is; the switch points are in the solution's
/// Statistics.Switches. Stiffness is judged from the explicit method's own stages (hρ against its stability
/// boundary on the negative real axis, computed from its tableau) and, while the implicit method steps, by power
/// iteration on f (two evaluations per step). Raises ArgumentException naming the argument that does not fit.
let autoSwitch (nonStiff: ButcherTableau) (stiff: ButcherTableau) =
    if nonStiff.IsImplicit || not nonStiff.IsAdaptive then
        raise (System.ArgumentException($"The non-stiff method of a stiffness switcher must be explicit and adaptive (dopri5, tsit5); got '{nonStiff.Name}'.", "nonStiff"))
    if not stiff.IsImplicit || stiff.Switching.IsSome || not stiff.IsAdaptive then
        raise (System.ArgumentException($"The stiff method of a stiffness switcher must be implicit and adaptive (kvaerno3, kvaerno4, kvaerno5, rosenbrock23, rodas4, kenCarp3…); got '{stiff.Name}'.", "stiff"))
    let s = nonStiff.Stages
    // The last two stages at one node: their difference estimates ρ.
    let pairs = [ for j in s - 1 .. -1 .. 1 do for i in j - 1 .. -1 .. 0 do if nonStiff.C[i] = nonStiff.C[j] && nonStiff.C[j] > 0.0 then yield i, j ]
    match pairs with
    | [] -> raise (System.ArgumentException($"'{nonStiff.Name}' has no two stages at the same node, from which the switcher estimates stiffness; use dopri5 or tsit5.", "nonStiff"))
    | pair :: _ ->
        let rule =
            { Explicit = nonStiff; Implicit = stiff; StabilityBoundary = StabilityRegion.realBoundary nonStiff
              StagePair = pair; Threshold = 0.9; StiffSteps = 10; NonStiffSteps = 3 }
        { nonStiff with
            Name = $"auto({nonStiff.Name}, {stiff.Name})"
            Dense = DenseOutput.Hermite
            Citation = $"stiffness switching between {nonStiff.Name} and {stiff.Name} (Hairer & Wanner, Solving ODEs II, §IV.2; SciML's AutoSwitch)"
            Gamma = stiff.Gamma
            Newton = stiff.Newton
            Switching = Some rule }

/// An implicit solver whose stages are solved with these Newton options (the layout of the Jacobian, a Jacobian of
/// your own, the tolerance and the iteration counts; a Rosenbrock solver uses the layout, the Jacobian and
/// MaxFailures, its retries after a singular matrix). Raises ArgumentException for an explicit solver.
let withNewton (options: NewtonOptions) (solver: ButcherTableau) =
    NewtonOptions.validate options
    if not solver.IsImplicit then
        raise (System.ArgumentException($"Solver '{solver.Name}' is explicit: it has no Newton iteration to configure. Use an implicit solver (kvaerno3, kvaerno4, kvaerno5, kenCarp3, kenCarp4, kenCarp5, rosenbrock23, rodas4).", "solver"))
    match solver.Switching with
    | Some rule -> { solver with Newton = options; Switching = Some { rule with Implicit = { rule.Implicit with Newton = options } } }
    | None -> { solver with Newton = options }

/// An implicit solver for a batch [N, …] whose rows do not interact: the Jacobian as N per-row blocks
/// (JacobianStructure.RowBlocks).
let withRowBlocks (solver: ButcherTableau) = withNewton { solver.Newton with Structure = JacobianStructure.RowBlocks } solver

/// Finds a solver by its name (case-insensitive).
let byName (name: string) =
    match all @ implicitSolvers |> List.tryFind (fun t -> System.String.Equals(t.Name, name, System.StringComparison.OrdinalIgnoreCase)) with
    | Some t -> t
    | None ->
        let known = all @ implicitSolvers |> List.map (fun t -> t.Name) |> String.concat ", "
        raise (System.ArgumentException($"Unknown solver '{name}'. Known solvers: {known}.", "name"))
