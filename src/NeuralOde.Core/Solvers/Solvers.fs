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

/// Shampine & Reichelt's Rosenbrock 2(3) (MATLAB's ode23s), linearly implicit (L-stable), adaptive: one LU
/// factorisation per step and no Newton iteration; for stiff problems at loose tolerances.
let rosenbrock23 = Rosenbrock23.tableau
/// Hairer & Wanner's RODAS 4(3), linearly implicit (L-stable, stiffly accurate), adaptive: for stiff problems at
/// moderate tolerances.
let rodas4 = Rodas4.tableau

/// Every explicit solver, fixed-step ones first.
let all = [ euler; midpoint; heun; rk4; bosh3; dopri5; tsit5; dopri8 ]

/// The implicit (stiff) solvers, solved on tensors: ESDIRK methods with a Newton iteration per stage, Rosenbrock
/// methods with one linear solve per stage.
let implicitSolvers = [ kvaerno3; kvaerno4; kvaerno5; rosenbrock23; rodas4 ]

/// An implicit solver whose stages are solved with these Newton options (the layout of the Jacobian, a Jacobian of
/// your own, the tolerance and the iteration counts; a Rosenbrock solver uses the layout, the Jacobian and
/// MaxFailures, its retries after a singular matrix). Raises ArgumentException for an explicit solver.
let withNewton (options: NewtonOptions) (solver: ButcherTableau) =
    NewtonOptions.validate options
    if not solver.IsImplicit then
        raise (System.ArgumentException($"Solver '{solver.Name}' is explicit: it has no Newton iteration to configure. Use an implicit solver (kvaerno3, kvaerno4, kvaerno5, rosenbrock23, rodas4).", "solver"))
    { solver with Newton = options }

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
