/// W11 events, ours: the bouncing ball of ../shared/bench-peers/w11_events_torchdiffeq.py (torchdiffeq's
/// examples/bouncing_ball.py setting), float64: state (height, velocity), dx/dt = (v, −g), radius 0.2, dropped from 10
/// at rest; learnable g (init 9.0) and e (init 0.7); five bounces located by Events.solve (Dopri5, rtol = atol = 1e-8,
/// event times to 1e-8 as the peer's), v ← −e·v at each (no 1e-7 nudge needed: a just-fired event is not seen again);
/// loss = MSE of the bounce times + MSE of the apex heights r + v⁺²/2g against the closed form for g = 9.8, e = 0.8;
/// autograd; Adam 0.05. `Step ()` runs one iteration and returns the loss.
module NeuralOde.Benchmarks.BouncingBall

open System
open TorchSharp
open NeuralOde
open NeuralOde.Core

let private radius, height, bounces = 0.2, 10.0, 5
let private f64 = torch.float64

let private targets () =
    let times, heights = ResizeArray<float>(), ResizeArray<float>()
    let mutable t = sqrt (2.0 * (height - radius) / 9.8)
    let mutable v = 9.8 * t
    for _ in 1 .. bounces do
        times.Add t
        v <- v * 0.8
        heights.Add(radius + v * v / (2.0 * 9.8))
        t <- t + 2.0 * v / 9.8
    times.ToArray(), heights.ToArray()

type Trainer() =
    let gravity = new Modules.Parameter(torch.tensor(9.0, dtype = f64))
    let restitution = new Modules.Parameter(torch.tensor(0.7, dtype = f64))
    let optimizer = torch.optim.Adam([| gravity; restitution |], 0.05)
    let targetTimes, targetHeights = targets ()
    let fall (_: float) (x: torch.Tensor) = torch.stack([| x.[1]; gravity.neg() |])
    let floor =
        Events.create "floor" EventDirection.Falling (fun _ x -> x.[0].sub(torch.tensor(radius, dtype = f64)))
        |> Events.withUpdate (fun _ x -> torch.stack([| x.[0]; x.[1].mul(restitution).neg() |]))
    let options = { Events.defaultOptions with Tolerance = 1e-8; StopAfter = Some bounces }
    member val Evaluations = 0 with get, set

    member t.Step() =
        use _ = torch.NewDisposeScope()
        optimizer.zero_grad()
        use x0 = torch.tensor([| height; 0.0 |], dtype = f64)
        let problem = OdeProblem.create fall x0 [| 0.0; 30.0 |]
        let s = Events.solveWithOptions options Sensitivity.Autograd [ floor ] problem Solvers.dopri5 (StepControl.adaptive 1e-8 1e-8)
        t.Evaluations <- s.Statistics.FunctionEvaluations
        let times = torch.stack([| for o in s.Events -> o.Time |])
        let apex = torch.stack([| for o in s.Events -> o.State.[1].mul(restitution).square().div(gravity.mul(torch.tensor(2.0, dtype = f64))).add(torch.tensor(radius, dtype = f64)) |])
        let loss = times.sub(torch.tensor(targetTimes, dtype = f64)).square().mean().add(apex.sub(torch.tensor(targetHeights, dtype = f64)).square().mean())
        loss.backward()
        optimizer.step() |> ignore
        loss.ToDouble()

    member _.Gravity = gravity.ToDouble()
    member _.Restitution = restitution.ToDouble()
