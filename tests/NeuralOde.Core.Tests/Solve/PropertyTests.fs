/// FsCheck properties of the solve over random smooth nonlinear problems (float64, both time directions).
module NeuralOde.Tests.Solve.PropertyTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Generators

let private config =
    { FsCheckConfig.defaultConfig with maxTest = 25; arbitrary = [ typeof<Arbitraries> ] }

let private tight = StepControl.adaptive 1e-9 1e-11

[<Tests>]
let tests =
    testList "Solve/properties" [
        testPropertyWithConfig config "batch invariance, fixed step: a batch solves exactly as its rows do" <| fun (p: RandomProblem) ->
            let f, x0 = p.Build()
            use _ = x0
            use whole = Ode.odeint f x0 [| p.T0; p.T1 |] Solvers.rk4 (StepControl.steps 20)
            for r in 0 .. p.Batch - 1 do
                use row = x0.narrow(0, int64 r, 1L)
                use single = Ode.odeint f row [| p.T0; p.T1 |] Solvers.rk4 (StepControl.steps 20)
                use a = whole.Final.narrow(0, int64 r, 1L)
                use b = single.Final
                Expect.isLessThan (Tensors.maxAbsDiff a b) 1e-13 $"row {r} of {p}"

        testPropertyWithConfig config "batch invariance, adaptive: a batch matches its rows within tolerance" <| fun (p: RandomProblem) ->
            let f, x0 = p.Build()
            use _ = x0
            use whole = Ode.odeint f x0 [| p.T0; p.T1 |] Solvers.dopri5 tight
            for r in 0 .. p.Batch - 1 do
                use row = x0.narrow(0, int64 r, 1L)
                use single = Ode.odeint f row [| p.T0; p.T1 |] Solvers.dopri5 tight
                use a = whole.Final.narrow(0, int64 r, 1L)
                use b = single.Final
                Expect.isLessThan (Tensors.maxAbsDiff a b) 1e-7 $"row {r} of {p}"

        testPropertyWithConfig config "forward then back returns to the start within tolerance" <| fun (p: RandomProblem) ->
            let f, x0 = p.Build()
            use _ = x0
            use there = Ode.odeint f x0 [| p.T0; p.T1 |] Solvers.tsit5 tight
            use end' = there.Final
            use back = Ode.odeint f end' [| p.T1; p.T0 |] Solvers.tsit5 tight
            use start = back.Final
            Expect.isLessThan (Tensors.maxAbsDiff start x0) 1e-7 $"{p}"

        testPropertyWithConfig config "dense output matches a solve that stops exactly at that time" <| fun (p: RandomProblem) (fraction: FsCheck.NormalFloat) ->
            let theta = 0.05 + 0.9 * abs (sin fraction.Get)
            let tm = p.T0 + theta * (p.T1 - p.T0)
            let f, x0 = p.Build()
            use _ = x0
            for solver in [ Solvers.dopri5; Solvers.tsit5; Solvers.bosh3 ] do
                use dense = Ode.odeint f x0 [| p.T0; tm; p.T1 |] solver tight
                use stop = Ode.odeint f x0 [| p.T0; tm |] solver tight
                use a = dense.States[1]
                use b = stop.Final
                Expect.isLessThan (Tensors.maxAbsDiff a b) 1e-7 $"{solver.Name} at t = {tm} for {p}"
    ]
