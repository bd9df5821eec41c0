/// Finding where events happen inside an accepted step: each condition's sign at the step's ends, then the root of
/// g(T + θH, x(θ)) on the solver's dense output by the Illinois method (regula falsi that halves the stale end's value,
/// superlinear and bracketed), to a tolerance in time. A crossing is counted when g leaves a strictly signed value
/// and reaches zero or the other sign in the step's direction; two sign changes inside one step are not seen (take
/// smaller steps, e.g. a smaller maximum step, when events can come that close).
module internal NeuralOde.Core.EventLocator

open System
open TorchSharp
open NeuralOde.Core.State

/// Does a move of g from `ga` (the step's start) to `gb` (its end) fire an event of this direction?
let fires (direction: EventDirection) (ga: float) (gb: float) =
    let rising = ga < 0.0 && gb >= 0.0
    let falling = ga > 0.0 && gb <= 0.0
    match direction with
    | EventDirection.Rising -> rising
    | EventDirection.Falling -> falling
    | _ -> rising || falling

/// The root of phi on [a, 1] given phi(a) = fa and phi(1) = fb of opposite signs (or fb = 0), to `tolerance` in θ:
/// the end of the final bracket on the side that has crossed (so the event's direction holds there).
let root (phi: float -> float) (a0: float) (fa: float) (fb: float) (tolerance: float) =
    if fb = 0.0 then 1.0
    else
        let mutable a, va, b, vb = a0, fa, 1.0, fb
        let mutable side = 0
        let mutable iterations = 0
        while b - a > tolerance && iterations < 200 do
            iterations <- iterations + 1
            let secant = (a * vb - b * va) / (vb - va)
            // Bisect when the secant leaves the bracket's interior (rounding).
            let c = if secant > a && secant < b then secant else 0.5 * (a + b)
            let vc = phi c
            if vc = 0.0 then
                a <- c
                b <- c
            elif Math.Sign vc = Math.Sign vb then
                b <- c
                vb <- vc
                if side = -1 then va <- 0.5 * va
                side <- -1
            else
                a <- c
                va <- vc
                if side = 1 then vb <- 0.5 * vb
                side <- 1
        b

/// A located event: its time and the events that fire there (indices, simultaneous within the tolerance).
type Located = { Time: float; Indices: int list }

/// The value of an event's condition at (t, x), as a float (no gradients).
let value (e: OdeEvent) (t: float) (x: torch.Tensor) =
    use _ = torch.no_grad()
    use tt = torch.tensor(t, dtype = x.dtype, device = x.device)
    use g = e.Condition tt x
    if isNull g || g.numel() <> 1L then
        let shape = if isNull g then "null" else Internal.TensorOps.shapeText g
        raise (ArgumentException($"The condition of event '{e.Name}' must return a single number (a 0-dim tensor); at t = {t} it returned {shape}.", "events"))
    let v = g.ToDouble()
    if Double.IsNaN v then raise (ArgumentException($"The condition of event '{e.Name}' is NaN at t = {t}.", "events"))
    v

/// Watches accepted steps for the events: `previous` holds each condition's value at the current step's start (the
/// segment's start at first), `masked` the events that just fired at the segment's start with the window in which
/// their crossings are that same event again. An event that just fired starts the segment at g ≈ 0; its sign there is
/// taken from its slope (dg/dt, `startSlopes`), so that a return within the first step (a short flight after a
/// bounce) is still seen: the root is then bracketed from the largest θ = 2^-k where g has that sign.
/// Returns the first located event of a step, if any.
type Watcher(events: OdeEvent[], tableau: ButcherTableau, start: float, startValues: float[], startSlopes: float[],
             masked: int list, window: float, tolerance: float) =
    let onSurface = Array.init events.Length (fun i -> List.contains i masked && startSlopes.[i] <> 0.0)
    let previous = Array.init events.Length (fun i -> if onSurface.[i] then float (Math.Sign startSlopes.[i]) * Double.Epsilon else startValues.[i])
    let mutable first = true
    member val Found : Located option = None with get, set

    /// Looks at one accepted step; true when an event was located in it (the solve then stops).
    member w.Step(field: float -> torch.Tensor -> torch.Tensor, step: Loop.AcceptedStep<torch.Tensor>) =
        use _ = torch.no_grad()
        let tEnd = step.T + step.H
        let ends = events |> Array.map (fun e -> value e tEnd step.Y1)
        let candidates =
            [ for i in 0 .. events.Length - 1 do
                if fires events.[i].Direction previous.[i] ends.[i] then yield i ]
        let located =
            if candidates.IsEmpty then []
            else
                use algebra = new TensorAlgebra()
                let f1 =
                    if isNull step.F1 && DenseOutputEval.needsEndDerivative tableau then field tEnd step.Y1 else step.F1
                let at (theta: float) =
                    if theta <= 0.0 then step.Y0 elif theta >= 1.0 then step.Y1
                    else DenseOutputEval.evaluate algebra tableau.Dense step.Y0 step.Y1 step.H step.Ks f1 theta
                let thetaTolerance = tolerance * Math.Max(1.0, abs tEnd) / abs step.H
                [ for i in candidates do
                    let phi theta =
                        let x = at theta
                        let v = value events.[i] (step.T + theta * step.H) x
                        if not (obj.ReferenceEquals(x, step.Y0) || obj.ReferenceEquals(x, step.Y1)) then x.Dispose()
                        v
                    // Leaving the surface in the first step and back within it: bracket from the largest θ = 2^-k
                    // where g has the slope's sign (near the start it has, g ≈ slope·θh), so the return is inside.
                    let bracket =
                        if first && onSurface.[i] then
                            seq { 1 .. 60 } |> Seq.map (fun k -> let th = Math.Pow(2.0, float -k) in th, phi th)
                            |> Seq.tryFind (fun (_, v) -> Math.Sign v = Math.Sign previous.[i] && v <> 0.0)
                        else Some(0.0, previous.[i])
                    match bracket with
                    | None -> ()
                    | Some(a, va) ->
                        let theta = root phi a va ends.[i] thetaTolerance
                        let t = step.T + theta * step.H
                        // The event that just fired at the segment's start, seen again within its window: not new.
                        if not (List.contains i masked && abs (t - start) <= window) then yield i, t ]
        Array.blit ends 0 previous 0 ends.Length
        first <- false
        match located with
        | [] -> false
        | _ ->
            let first = located |> List.minBy snd |> snd
            let same = Math.Max(2.0 * tolerance * Math.Max(1.0, abs first), 4.0 * Double.Epsilon)
            w.Found <- Some { Time = first; Indices = located |> List.filter (fun (_, t) -> t - first <= same) |> List.map fst }
            true
