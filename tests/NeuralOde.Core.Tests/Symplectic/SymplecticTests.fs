/// Symplectic integrators on the harmonic oscillator H = (p² + q²)/2: their order of convergence, and what they
/// promise — an energy error that stays bounded over 100,000 steps of size 0.5 — where RK4 loses most of the energy.
module NeuralOde.Tests.Symplectic.SymplecticTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

let private oscillator (q: torch.Tensor) = q.neg()

let private energy (q: float[]) (p: float[]) = Array.map2 (fun q p -> 0.5 * (q * q + p * p)) q p

[<Tests>]
let tests =
    testList "Symplectic" [
        for methodUsed, minimum in [ Symplectic.leapfrog, 1.9; Symplectic.yoshida4, 3.8 ] do
            test $"{methodUsed.Name}: converges at order {methodUsed.Order} (fitted slope above {minimum})" {
                let errors =
                    [| 10; 20; 40; 80 |] |> Array.map (fun n ->
                        use q0 = Tensors.f64 [| 1.0 |]
                        use p0 = Tensors.f64 [| 0.0 |]
                        let q, p = Symplectic.solve methodUsed oscillator q0 p0 (1.0 / float n) n n
                        use _q = q
                        use _p = p
                        let qT, pT = (Tensors.toArray q)[1], (Tensors.toArray p)[1]
                        max (abs (qT - cos 1.0)) (abs (pT + sin 1.0)))
                let slope = Tensors.logLogSlope [| 0.1; 0.05; 0.025; 0.0125 |] errors
                Expect.isGreaterThan slope minimum $"fitted order {slope:F2} for errors %A{errors}"
            }
        test "the energy error stays bounded over 100,000 steps of 0.5, where RK4 loses most of the energy" {
            use q0 = Tensors.f64 [| 1.0 |]
            use p0 = Tensors.f64 [| 0.0 |]
            let q, p = Symplectic.solve Symplectic.leapfrog oscillator q0 p0 0.5 100_000 500
            use _q = q
            use _p = p
            let e = energy (Tensors.toArray q) (Tensors.toArray p)
            let deviation = e |> Array.map (fun x -> abs (x - 0.5) / 0.5)
            Expect.isLessThan (Array.max deviation) 0.07 "leapfrog: |E − E0| / E0 stays below 7% (O(h²))"
            let early, late = Array.average deviation[.. 20], Array.average deviation[deviation.Length - 21 ..]
            Expect.isLessThan late (1.5 * early + 1e-12) $"no drift: mean deviation {early:E2} early, {late:E2} late"
            let qy, py = Symplectic.solve Symplectic.yoshida4 oscillator q0 p0 0.5 100_000 500
            use _qy = qy
            use _py = py
            let ey = energy (Tensors.toArray qy) (Tensors.toArray py)
            Expect.isLessThan (ey |> Array.map (fun x -> abs (x - 0.5) / 0.5) |> Array.max) 0.07 "yoshida4 bounded too"
            // RK4 with the same step: a state [q, p], f = (p, −q).
            use x0 = Tensors.f64 [| 1.0; 0.0 |]
            use rotation = Tensors.f64m [| [| 0.0; -1.0 |]; [| 1.0; 0.0 |] |]
            use rk4 = Ode.odeint (fun _ x -> x.matmul(rotation)) x0 [| 0.0; 10_000.0 |] Solvers.rk4 (StepControl.Steps(20_000, 20_000))
            let final = Tensors.toArray rk4.Final
            let rk4Energy = energy [| final[0] |] [| final[1] |]
            Expect.isLessThan rk4Energy[0] (0.5 * 0.2) $"RK4 kept {rk4Energy[0] / 0.5:P1} of the energy"
        }
        test "bad arguments are named" {
            use q0 = Tensors.f64 [| 1.0 |]
            use p0 = Tensors.f64 [| 0.0; 1.0 |]
            let e = Raises.raises<ArgumentException> (fun () -> Symplectic.solve Symplectic.leapfrog oscillator q0 p0 0.1 10 1 |> ignore)
            Expect.equal e.ParamName "p0" "shape mismatch"
            use p1 = Tensors.f64 [| 0.0 |]
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> Symplectic.solve Symplectic.leapfrog oscillator q0 p1 nan 10 1 |> ignore)
            Expect.equal e.ParamName "dt" "dt"
            let e = Raises.raises<ArgumentException> (fun () -> Symplectic.solve Symplectic.leapfrog (fun q -> torch.cat([| q; q |], 0L)) q0 p1 0.1 10 1 |> ignore)
            Expect.equal e.ParamName "acceleration" "acceleration's shape"
        }
        test "an acceleration that returns NaN fails the solve as the ODE solvers do, with the time of the evaluation" {
            use q0 = Tensors.f64 [| 1.0 |]
            use p0 = Tensors.f64 [| 0.0 |]
            let mutable calls = 0
            // Leapfrog evaluates once per step, after its first half drift: the fourth call is at t = 3.5 dt.
            let failing (q: torch.Tensor) =
                calls <- calls + 1
                if calls = 4 then torch.full_like(q, Scalar.op_Implicit nan) else q.neg()
            let e = Raises.raises<OdeSolveException> (fun () -> Symplectic.solve Symplectic.leapfrog failing q0 p0 0.1 10 1 |> ignore)
            Expect.equal e.Failure OdeFailure.NonFiniteValue "the ODE solvers' failure for a non-finite field"
            Expect.floatClose Accuracy.high e.Time 0.35 "the time of the evaluation"
            Expect.stringContains e.Message "acceleration returned NaN or Inf at t = 0.35" "says what and when"
        }
    ]
