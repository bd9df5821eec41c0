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

/// Every solver, fixed-step ones first.
let all = [ euler; midpoint; heun; rk4; bosh3; dopri5; tsit5; dopri8 ]

/// Finds a solver by its name (case-insensitive).
let byName (name: string) =
    match all |> List.tryFind (fun t -> System.String.Equals(t.Name, name, System.StringComparison.OrdinalIgnoreCase)) with
    | Some t -> t
    | None ->
        let known = all |> List.map (fun t -> t.Name) |> String.concat ", "
        raise (System.ArgumentException($"Unknown solver '{name}'. Known solvers: {known}.", "name"))
