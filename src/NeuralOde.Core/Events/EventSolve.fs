/// Solving with events (diffrax's Event, torchdiffeq's odeint_event, SciML's callbacks), on the one integration loop:
/// the span is solved in segments, each from the last event (or the start) to the next. A segment is first run without
/// gradients, watching every accepted step for crossings (EventLocator: located on the dense output to a tolerance),
/// and stopped at the first; then solved again to the event time with the caller's sensitivity (autograd or an
/// adjoint), with the outputs that fall inside it. The event time gets the implicit-function-theorem gradient:
/// with D = ∂g/∂t + ∂g/∂x·f at (t*, x*),
///     t̂ = t* − (g(t*, x*) − [g(t*, x*)]) / [D]          (value t*, gradient −(dg at fixed t)/D)
///     x̂ = x(t*) + [f(t*, x*)]·(t̂ − [t̂])               (value x(t*), the total derivative through t*)
/// where [·] is a value without gradient. A segment after an event starts from the updated state shifted the same way,
/// x_s − [f(t_s, x_s)]·(t̂_s − [t̂_s]), so that later states and event times depend on earlier event times as the flow
/// says (to first order, as torchdiffeq's odeint_event and diffrax). Forward in time only.
module NeuralOde.Core.Events

open System
open TorchSharp
open NeuralOde.Core.Internal

/// Root-finding tolerance and a bound on the number of events.
type EventOptions =
    { /// Events are located to |Δt| ≤ Tolerance · max(1, |t|) (default 1e-12).
      Tolerance: float
      /// The most events one solve may see (default 10,000): a ball bouncing ever faster (Zeno) ends with a named
      /// error instead of a solve that never finishes.
      MaxEvents: int
      /// End the solve (Terminated) after this many events, the last one's update applied (None: no such end):
      /// "the first five bounces", whatever their times.
      StopAfter: int option }

/// Tolerance 1e-12, at most 10,000 events, no stop after a count.
let defaultOptions = { Tolerance = 1e-12; MaxEvents = 10_000; StopAfter = None }

/// An event with a condition, a direction, and no update; not terminal (`terminal`, `withUpdate` change that).
let create (name: string) (direction: EventDirection) (condition: torch.Tensor -> torch.Tensor -> torch.Tensor) : OdeEvent =
    { Condition = condition; Direction = direction; Terminal = false; Update = None; Name = name }

/// The event, ending the solve.
let terminal (e: OdeEvent) = { e with Terminal = true }

/// The event, replacing the state by `update t* x*` and going on.
let withUpdate (update: torch.Tensor -> torch.Tensor -> torch.Tensor) (e: OdeEvent) = { e with Update = Some update }

let private check (options: EventOptions) (events: OdeEvent list) (problem: OdeProblem) =
    Guard.positiveFinite "tolerance" options.Tolerance
    Guard.positiveCount "maxEvents" options.MaxEvents
    options.StopAfter |> Option.iter (Guard.positiveCount "stopAfter")
    if isNull (box events) then raise (ArgumentNullException("events"))
    events |> List.iteri (fun i e ->
        if isNull (box e.Condition) then raise (ArgumentNullException("events", $"Event {i} ('{e.Name}') has no condition."))
        if e.Terminal && e.Update.IsSome then
            raise (ArgumentException($"Event {i} ('{e.Name}') is terminal and has an update: a terminal event ends the solve, so its update would never be used.", "events")))
    if problem.Times.Length < 2 || problem.Times.[problem.Times.Length - 1] <= problem.Times.[0] then
        raise (ArgumentException("A solve with events runs forward in time: give increasing output times (at least a start and an end).", "times"))
    if problem.TimeTensor.IsSome then
        raise (ArgumentException("A solve with events does not take a time tensor: its event times are differentiable instead.", "problem"))
    if problem.IntegralLoss.IsSome then
        raise (ArgumentException("A solve with events does not take a running loss; add it to the state.", "problem"))

/// A 0-dim tensor holding the value of `t`, without gradient, shaped like x's dtype and device.
let private constant (t: float) (x: torch.Tensor) = torch.tensor(t, dtype = x.dtype, device = x.device)

/// dg/dt = ∂g/∂t + ∂g/∂x·f at (t, x), by autograd on copies without history (f given).
let private slopeOf (e: OdeEvent) (t: float) (x: torch.Tensor) (f: torch.Tensor) =
    use _ = torch.enable_grad()
    use tt = (constant t x).requires_grad_(true)
    use xx = x.detach().requires_grad_(true)
    use g = e.Condition tt xx
    let grads = torch.autograd.grad([| g |], [| tt; xx |], allow_unused = true)
    // An input g does not use comes back undefined (an empty handle), not null.
    let defined (x: torch.Tensor) = not (isNull x) && not x.IsInvalid
    let dt = if defined grads.[0] then grads.[0].ToDouble() else 0.0
    let dx = if defined grads.[1] then (use p = grads.[1].mul(f) in use s = p.sum() in s.ToDouble()) else 0.0
    for g in grads do if defined g then g.Dispose()
    dt + dx

/// The implicit-function-theorem event time and state (see the module's comment) for event `e` at (t*, x*).
let private differentiable (e: OdeEvent) (field: VectorField) (t: float) (x: torch.Tensor) =
    let f = (use _ = torch.no_grad() in field t (x.detach())).detach()
    let slope = slopeOf e t x f
    if slope = 0.0 || Double.IsNaN slope || Double.IsInfinity slope then
        raise (OdeSolveException(OdeFailure.NonFiniteValue, t,
                 $"Event '{e.Name}' at t = {t}: its condition crosses zero with total derivative dg/dt = {slope} (tangentially), so the event time has no gradient. Events need a transversal crossing."))
    let g = e.Condition (constant t x) x
    let tHat = TensorOps.addConstant (TensorOps.scale (g.sub(g.detach())) (-1.0 / slope)) t
    let shift = tHat.sub(tHat.detach())
    let xHat = TensorOps.plus x (f.mul(shift))
    tHat, xHat, f

/// Solves `problem` (increasing times) with `events`, by `sensitivity` (autograd or an adjoint: each segment is solved
/// with it), with `solver` under `control`. Outputs at the problem's times up to a terminal event; every event that
/// happened, with its differentiable time and state; the final state.
let solveWithOptions (options: EventOptions) (sensitivity: Sensitivity) (events: OdeEvent list) (problem: OdeProblem)
                     (solver: ButcherTableau) (control: StepControl) : EventSolution =
    check options events problem
    let events = Array.ofList events
    let times = problem.Times
    let tEnd = times.[times.Length - 1]
    let outputs = ResizeArray<torch.Tensor>([ problem.X0 ])
    let outputTimes = ResizeArray<float>([ times.[0] ])
    let occurrences = ResizeArray<EventOccurrence>()
    let mutable evaluations, accepted, rejected, backend = 0, 0, 0, "module"
    let count (s: SolveStatistics) =
        evaluations <- evaluations + s.FunctionEvaluations
        accepted <- accepted + s.AcceptedSteps
        rejected <- rejected + s.RejectedSteps
        backend <- s.Backend
    // The stiffness switcher's switches, of the solves that make the outputs (the locating passes repeat them).
    let switches = ResizeArray<SolverSwitch>()
    let mutable start = times.[0]
    let mutable state = problem.X0
    let mutable next = 1
    let mutable masked = []
    let mutable final = problem.X0
    let mutable terminated = false
    let mutable finished = false
    while not finished do
        // 1. Where is the next event? A pass without gradients, stopped at the first located crossing.
        let startValues = events |> Array.map (fun e -> EventLocator.value e start state)
        let window = Math.Max(100.0 * options.Tolerance, 1e-12) * Math.Max(1.0, abs start)
        let startSlopes =
            if masked.IsEmpty then Array.zeroCreate events.Length
            else
                use f = (use _ = torch.no_grad() in problem.VectorField start (state.detach())).detach()
                events |> Array.mapi (fun i e -> if List.contains i masked then slopeOf e start state f else 0.0)
        let watcher = EventLocator.Watcher(events, solver, start, startValues, startSlopes, masked, window, options.Tolerance)
        let located =
            if events.Length = 0 || start >= tEnd then None
            else
                use _ = torch.no_grad()
                use x = state.detach()
                let probe = { problem with X0 = x; Times = [| start; tEnd |]; Parameters = [||]; TimeTensor = None; IntegralLoss = None }
                let solution, _ = Integrate.solveWith { Integrate.defaultSettings with Watch = Some(fun f step -> watcher.Step(f, step)) } probe solver control
                count solution.Statistics
                solution.States.Dispose()
                watcher.Found
        // 2. The segment to the event (or the end) with gradients, and the outputs inside it.
        let stop = match located with Some l -> l.Time | None -> tEnd
        let inside =
            let within = ResizeArray<float>()
            while next < times.Length && times.[next] < stop do
                within.Add times.[next]
                next <- next + 1
            List.ofSeq within
        let segmentTimes = Array.ofList ((start :: inside) @ [ stop ])
        let atStop =
            if stop > start then
                let solution = Ode.solveWith sensitivity { problem with X0 = state; Times = segmentTimes } solver control
                count solution.Statistics
                switches.AddRange solution.Statistics.Switches
                for k in 1 .. inside.Length do
                    outputs.Add(solution.States.[int64 k])
                    outputTimes.Add(segmentTimes.[k])
                solution.States.[int64 (segmentTimes.Length - 1)]
            else state
        match located with
        | None ->
            // The end: its output (times' last) unless already there.
            if next < times.Length && times.[next] = tEnd then
                outputs.Add atStop
                outputTimes.Add tEnd
                next <- next + 1
            final <- atStop
            finished <- true
        | Some l ->
            let first = events.[l.Indices.Head]
            let tHat, xHat, _ = differentiable first problem.VectorField l.Time atStop
            for i in l.Indices do
                occurrences.Add { Index = i; Name = events.[i].Name; Time = tHat; State = xHat }
            if occurrences.Count > options.MaxEvents then
                raise (OdeSolveException(OdeFailure.MaxStepsExceeded, l.Time,
                         $"More than {options.MaxEvents} events by t = {l.Time} (the last: '{first.Name}'): events that come ever faster (a ball bouncing to rest) never let the solve end. Add a terminal event, or raise EventOptions.MaxEvents."))
            // An output exactly at the event time gets the state there, before any update.
            if next < times.Length && times.[next] = l.Time then
                outputs.Add xHat
                outputTimes.Add l.Time
                next <- next + 1
            if l.Indices |> List.exists (fun i -> events.[i].Terminal) then
                terminated <- true
                final <- xHat
                finished <- true
            else
                let updated = l.Indices |> List.fold (fun x i -> match events.[i].Update with Some u -> u tHat x | None -> x) xHat
                if isNull updated || updated.shape <> xHat.shape then
                    raise (ArgumentException($"The update of event '{first.Name}' at t = {l.Time} must return a state of the state's shape {TensorOps.shapeText xHat}.", "events"))
                // The next segment starts at t̂: its states depend on t̂ through the shift (see the module's comment).
                let fNew = (use _ = torch.no_grad() in problem.VectorField l.Time (updated.detach())).detach()
                state <- updated.sub(fNew.mul(tHat.sub(tHat.detach())))
                start <- l.Time
                masked <- l.Indices
                final <- updated
                if options.StopAfter |> Option.exists (fun n -> occurrences.Count >= n) then
                    terminated <- true
                    finished <- true
                elif start >= tEnd then
                    if next < times.Length then
                        outputs.Add updated
                        outputTimes.Add tEnd
                        next <- next + 1
                    finished <- true
    { Times = outputTimes.ToArray()
      States = torch.stack(outputs)
      Events = List.ofSeq occurrences
      Terminated = terminated
      Final = final
      Statistics = { FunctionEvaluations = evaluations; AcceptedSteps = accepted; RejectedSteps = rejected; Backend = backend; Switches = switches.ToArray() } }

/// solveWithOptions with the default options (tolerance 1e-12, at most 10,000 events).
let solve (sensitivity: Sensitivity) (events: OdeEvent list) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) =
    solveWithOptions defaultOptions sensitivity events problem solver control
