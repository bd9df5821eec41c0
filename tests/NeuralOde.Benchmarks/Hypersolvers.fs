/// hypersolver: a hyper-Euler against Euler on a trained Neural ODE (W1's MLP field after 150 training iterations on
/// annuli, float32): the hyper-Euler's error at 10 steps, the number of Euler steps that matches it, and the wall
/// time of both solves interleaved in one run (ratio median over median) — the claim of Poli et al. 2020 that a
/// hypersolver reaches a base method's accuracy at a fraction of its cost.
module NeuralOde.Benchmarks.Hypersolvers

open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Benchmarks.Report

let run (repeats: int) =
    let block, trainer = Workloads.w1 1024 64 11
    for _ in 1 .. 150 do trainer.Step() |> ignore
    let field = block.VectorField
    let f: VectorField = fun _ z -> field.forward z
    torch.manual_seed(12L) |> ignore
    let correction = Sequential(Linear(4L, 64L), Tanh(), Linear(64L, 2L))
    let hyper = Hypersolver(Solvers.euler, correction)
    let training, _ = trainer.Sample()
    let losses = Hypersolver.train hyper f training 0.0 1.0 10 1500 3e-3 1e-6
    use _ = torch.no_grad()
    let z0, _ = trainer.Sample()
    use reference = (Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-7 1e-7)).Final.clone()
    let error (x: torch.Tensor) = (use d = (x - reference).abs().max() in d.ToDouble())
    let hyperError = (use s = hyper.Solve(f, z0, 0.0, 1.0, 10) in error s[10L])
    let eulerError (n: int) = (use s = Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.euler (StepControl.steps n) in error s.Final)
    let counts = [ 10; 20; 40; 80; 160; 320; 640; 1280 ]
    let errors = counts |> List.map (fun n -> n, eulerError n)
    let matched = errors |> List.tryFind (fun (_, e) -> e <= hyperError) |> Option.map fst |> Option.defaultValue 1280
    for n, e in errors do printfn "  Euler %4d steps: max error %.2e" n e
    printfn "  hyper-Euler 10 steps: max error %.2e (Euler needs %d)" hyperError matched
    let s =
        Measure.interleaved 5 repeats
            [| (fun () -> use _ = torch.NewDisposeScope() in hyper.Solve(f, z0, 0.0, 1.0, 10) |> ignore)
               (fun () -> use _ = torch.NewDisposeScope() in (Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.euler (StepControl.steps matched)) |> ignore) |]
    [ value "hypersolver" "residual fit (first → last MSE)" losses[losses.Length - 1] "" $"from {losses[0]:G3}, 1500 Adam steps on one reference solve"
      value "hypersolver" "hyper-Euler max error, 10 steps" hyperError "" "batch 1024 of annuli, against Dopri5 at 1e-7"
      value "hypersolver" "Euler steps for the same error" (float matched) "" (String.concat ", " (errors |> List.map (fun (n, e) -> $"{n}: {e:E2}")))
      timing "hypersolver" "hyper-Euler, 10 steps" s[0] "one solve, no grad"
      timing "hypersolver" $"Euler, {matched} steps" s[1] "one solve, no grad"
      value "hypersolver" "ratio hyper-Euler / Euler at equal accuracy (median)" (s[0].Median / s[1].Median) "×" "same run, interleaved" ]
