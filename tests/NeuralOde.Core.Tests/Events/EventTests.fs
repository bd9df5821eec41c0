/// Events: located crossings against closed forms, their differentiable times (the implicit-function-theorem
/// gradient) against closed-form derivatives under autograd and the adjoint, updates at events (a bouncing ball),
/// events that never fire, two in one step, a Zeno ball stopped by its bound, bad input named.
module NeuralOde.Tests.Events.EventTests

open System
open Expecto
open TorchSharp
open NeuralOde
open NeuralOde.Core
open NeuralOde.Tests.Support.Raises

let private f64 = torch.float64
let private scalar (v: float) = torch.tensor(v, dtype = f64)
let private tight = StepControl.adaptive 1e-10 1e-12

/// The ball: state [height, velocity], dx/dt = (v, −g); it bounces (v ← −e·v) when the height falls through zero.
let private gravity = 9.81
let private ball (t: float) (x: torch.Tensor) = torch.stack([| x.[1]; torch.tensor(-gravity, dtype = f64) |])
let private bounce (e: torch.Tensor) =
    Events.create "floor" EventDirection.Falling (fun _ x -> x.[0])
    |> Events.withUpdate (fun _ x -> torch.stack([| x.[0]; x.[1].mul(e).neg() |]))

/// The closed form: t1 = sqrt(2 h0 / g), t_n = t1 (1 + 2 Σ_{k=1}^{n−1} e^k).
let private bounceTime (h0: float) (e: float) (n: int) =
    let t1 = sqrt (2.0 * h0 / gravity)
    t1 * (1.0 + 2.0 * (Seq.sum [ for k in 1 .. n - 1 -> e ** float k ]))

[<Tests>]
let tests =
    testSequenced <| testList "Events" [
        test "a terminal event on a known crossing: x = t reaches 0.3; the solve stops there" {
            use x0 = torch.zeros([| 1L |], dtype = f64)
            let event = Events.create "x = 0.3" EventDirection.Rising (fun _ x -> x.[0].sub(scalar 0.3)) |> Events.terminal
            let problem = OdeProblem.create (fun _ x -> torch.ones_like x) x0 [| 0.0; 0.5; 1.0 |]
            let s = Events.solve Sensitivity.Autograd [ event ] problem Solvers.dopri5 tight
            Expect.isTrue s.Terminated "terminated"
            Expect.equal s.Events.Length 1 "one event"
            Expect.floatClose { absolute = 1e-12; relative = 0.0 } (s.Events.Head.Time.ToDouble()) 0.3 "t* = 0.3"
            Expect.floatClose { absolute = 1e-12; relative = 0.0 } (s.Final.[0].ToDouble()) 0.3 "x(t*) = 0.3"
            Expect.equal s.Times [| 0.0 |] "no output after the terminal event"
        }
        test "the event time's gradient is the implicit-function theorem's: x' = a x, x = 2 at t* = ln 2 / a (autograd and the adjoint)" {
            for name, sensitivity in [ "autograd", Sensitivity.Autograd; "adjoint", Sensitivity.adjoint ] do
                use a = torch.tensor(1.7, dtype = f64, requires_grad = true)
                use x0 = torch.ones([| 1L |], dtype = f64)
                let problem =
                    OdeProblem.create (fun _ x -> x.mul(a)) x0 [| 0.0; 5.0 |] |> OdeProblem.withParameters [ a ]
                let event = Events.create "x = 2" EventDirection.Rising (fun _ x -> x.[0].sub(scalar 2.0)) |> Events.terminal
                let s = Events.solve sensitivity [ event ] problem Solvers.dopri5 tight
                let t = s.Events.Head.Time
                Expect.floatClose { absolute = 1e-9; relative = 0.0 } (t.ToDouble()) (log 2.0 / 1.7) $"{name}: t*"
                t.backward()
                Expect.floatClose { absolute = 1e-7; relative = 0.0 } (a.grad.ToDouble()) (-(log 2.0) / (1.7 * 1.7)) $"{name}: dt*/da = −ln 2 / a²"
        }
        test "a bouncing ball: bounce times and their gradients in the restitution and the initial height match the closed form (autograd and the adjoint)" {
            let h0v, ev = 1.0, 0.8
            for name, sensitivity in [ "autograd", Sensitivity.Autograd; "adjoint", Sensitivity.adjoint ] do
                use h0 = torch.tensor(h0v, dtype = f64, requires_grad = true)
                use e = torch.tensor(ev, dtype = f64, requires_grad = true)
                use x0 = torch.stack([| h0; torch.tensor(0.0, dtype = f64) |])
                let problem = OdeProblem.create ball x0 [| 0.0; 1.0; 2.0 |]
                let s = Events.solve sensitivity [ bounce e ] problem Solvers.dopri5 tight
                Expect.equal s.Events.Length 3 $"{name}: three bounces by t = 2"
                s.Events |> List.iteri (fun i o ->
                    Expect.floatClose { absolute = 1e-9; relative = 0.0 } (o.Time.ToDouble()) (bounceTime h0v ev (i + 1)) $"{name}: bounce {i + 1}'s time")
                Expect.equal s.Times [| 0.0; 1.0; 2.0 |] "every output"
                let third = s.Events.[2].Time
                let dE, dH = torch.autograd.grad([| third |], [| e; h0 |]) |> fun g -> g.[0].ToDouble(), g.[1].ToDouble()
                let t1 = sqrt (2.0 * h0v / gravity)
                Expect.floatClose { absolute = 1e-7; relative = 0.0 } dE (t1 * (2.0 + 4.0 * ev)) $"{name}: dt3/de = t1 (2 + 4e)"
                Expect.floatClose { absolute = 1e-7; relative = 0.0 } dH (bounceTime h0v ev 3 / (2.0 * h0v)) $"{name}: dt3/dh0 = t3 / (2 h0)"
                // The height at t = 2 (after the third bounce): free flight from t3 with speed e³ g t1.
                let t3 = bounceTime h0v ev 3
                let v3 = ev ** 3.0 * gravity * t1
                let expected = v3 * (2.0 - t3) - 0.5 * gravity * (2.0 - t3) ** 2.0
                Expect.floatClose { absolute = 1e-8; relative = 0.0 } (s.States.[2L, 0L].ToDouble()) expected $"{name}: the height at t = 2"
        }
        test "a learned restitution is recovered by training through the events" {
            let targets = [| for n in 1 .. 3 -> bounceTime 1.0 0.8 n |]
            use e = torch.tensor(0.5, dtype = f64, requires_grad = true)
            use optimizer = torch.optim.Adam([| TorchSharp.Modules.Parameter(e) |], 0.02)
            let parameter = optimizer.parameters() |> Seq.head
            let loss () =
                use x0 = torch.tensor([| 1.0; 0.0 |], dtype = f64)
                let s = Events.solve Sensitivity.Autograd [ bounce parameter ] (OdeProblem.create ball x0 [| 0.0; 2.3 |]) Solvers.dopri5 tight
                let predicted = torch.stack([| for o in List.truncate 3 s.Events -> o.Time |])
                predicted.sub(torch.tensor(targets, dtype = f64)).square().sum()
            for _ in 1 .. 200 do
                use _ = torch.NewDisposeScope()
                optimizer.zero_grad()
                let l = loss ()
                l.backward()
                optimizer.step() |> ignore
            Expect.floatClose { absolute = 2e-3; relative = 0.0 } (parameter.ToDouble()) 0.8 "e recovered"
        }
        test "events on an implicit solver: x' = −1000 (x − cos t) crosses x = 0.5 where the closed form says" {
            // Stiff: x follows cos t closely; x(t) = cos t-ish, the exact solution from x0 = 1 is known in closed form.
            let k = 1000.0
            let exact (t: float) = (k * k * cos t + k * sin t) / (k * k + 1.0) + (1.0 - k * k / (k * k + 1.0)) * exp (-k * t)
            use x0 = torch.ones([| 1L |], dtype = f64)
            let field (t: float) (x: torch.Tensor) = x.sub(scalar (cos t)).mul(scalar -k)
            let event = Events.create "x = 0.5" EventDirection.Falling (fun _ x -> x.[0].sub(scalar 0.5)) |> Events.terminal
            let s = Events.solve Sensitivity.Autograd [ event ] (OdeProblem.create field x0 [| 0.0; 2.0 |]) Solvers.kvaerno5 (StepControl.adaptive 1e-9 1e-11)
            let t = s.Events.Head.Time.ToDouble()
            Expect.floatClose { absolute = 1e-9; relative = 0.0 } (exact t) 0.5 $"x(t*) = 0.5 by the closed form at t* = {t}"
            Expect.isLessThan s.Statistics.AcceptedSteps 400 "an implicit solver's step counts"
        }
        test "events that never fire leave the solve as it is" {
            use x0 = torch.tensor([| 0.5 |], dtype = f64)
            let problem = OdeProblem.create (fun _ x -> x.neg()) x0 [| 0.0; 0.5; 1.0 |]
            let never = Events.create "x = 5" EventDirection.Either (fun _ x -> x.[0].sub(scalar 5.0))
            let s = Events.solve Sensitivity.Autograd [ never ] problem Solvers.dopri5 tight
            use plain = Ode.solve problem Solvers.dopri5 tight
            Expect.isEmpty s.Events "no event"
            Expect.isFalse s.Terminated "not terminated"
            Expect.equal s.Times [| 0.0; 0.5; 1.0 |] "every output"
            Expect.isTrue (s.States.allclose(plain.States, 0.0, 1e-14)) "the plain solve's states"
        }
        test "two events inside one step are both found, in order, each at its time" {
            use x0 = torch.zeros([| 1L |], dtype = f64)
            let at (c: float) = Events.create $"x = {c}" EventDirection.Rising (fun _ x -> x.[0].sub(scalar c))
            let problem = OdeProblem.create (fun _ x -> torch.ones_like x) x0 [| 0.0; 1.0 |]
            // One RK4 step over the whole span: both crossings lie inside it.
            let s = Events.solve Sensitivity.Autograd [ at 0.35; at 0.3 ] problem Solvers.rk4 (StepControl.steps 1)
            Expect.equal (s.Events |> List.map (fun o -> o.Index)) [ 1; 0 ] "x = 0.3 first, then x = 0.35"
            Expect.floatClose { absolute = 1e-12; relative = 0.0 } (s.Events.[0].Time.ToDouble()) 0.3 "the first's time"
            Expect.floatClose { absolute = 1e-12; relative = 0.0 } (s.Events.[1].Time.ToDouble()) 0.35 "the second's time"
            Expect.floatClose { absolute = 1e-12; relative = 0.0 } (s.Final.[0].ToDouble()) 1.0 "the solve went on to the end"
        }
        test "a ball bouncing to rest (Zeno) ends with a named error at the event bound, not an endless solve" {
            use e = torch.tensor(0.5, dtype = f64)
            use x0 = torch.tensor([| 1.0; 0.0 |], dtype = f64)
            let problem = OdeProblem.create ball x0 [| 0.0; 10.0 |]
            let error = raises<OdeSolveException> (fun () ->
                Events.solveWithOptions { Events.defaultOptions with MaxEvents = 25 } Sensitivity.Autograd [ bounce e ] problem Solvers.dopri5 tight |> ignore)
            Expect.stringContains error.Message "More than 25 events" "names the bound"
        }
        test "bad input is named: a terminal event with an update, backward times, a condition that is not one number" {
            use x0 = torch.zeros([| 2L |], dtype = f64)
            let problem = OdeProblem.create (fun _ x -> torch.ones_like x) x0 [| 0.0; 1.0 |]
            let e1 = Events.create "both" EventDirection.Either (fun _ x -> x.[0]) |> Events.terminal |> Events.withUpdate (fun _ x -> x)
            let r1 = raises<ArgumentException> (fun () -> Events.solve Sensitivity.Autograd [ e1 ] problem Solvers.dopri5 tight |> ignore)
            Expect.stringContains r1.Message "terminal and has an update" "says why"
            let ok = Events.create "x" EventDirection.Either (fun _ x -> x.[0].sub(scalar 0.5))
            let r2 = raises<ArgumentException> (fun () -> Events.solve Sensitivity.Autograd [ ok ] { problem with Times = [| 1.0; 0.0 |] } Solvers.dopri5 tight |> ignore)
            Expect.equal r2.ParamName "times" "names the times"
            let vector = Events.create "vector" EventDirection.Either (fun _ x -> x)
            let r3 = raises<ArgumentException> (fun () -> Events.solve Sensitivity.Autograd [ vector ] problem Solvers.dopri5 tight |> ignore)
            Expect.stringContains r3.Message "must return a single number" "names the shape"
        }
    ]
