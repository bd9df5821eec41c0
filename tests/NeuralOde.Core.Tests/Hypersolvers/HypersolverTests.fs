/// Hypersolvers: a hyper-Euler (Euler + a learned correction of its local truncation error) trained on a Neural ODE's
/// reference residuals reaches, in 10 steps, an accuracy Euler needs several times more steps for (float64, fixed
/// seeds; the wall-time side is the benchmark `bench hypersolver`, never a timed unit test). The residual targets are
/// checked against their definition, and bad input is named.
module NeuralOde.Tests.Hypersolvers.HypersolverTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

/// A Neural ODE field: a tanh MLP 2 → 32 → 2 with fixed random weights (float64).
let private neuralField () =
    torch.manual_seed(21L) |> ignore
    let mlp = Sequential(Linear(2L, 32L), Tanh(), Linear(32L, 2L))
    mlp.``to``(torch.float64) |> ignore
    (use _ = torch.no_grad()
     for p in mlp.parameters() do p.mul_(Scalar.op_Implicit 1.5) |> ignore)
    let f: VectorField = fun _ z -> mlp.forward z
    mlp, f

let private correction () =
    torch.manual_seed(22L) |> ignore
    let g = Sequential(Linear(4L, 64L), Tanh(), Linear(64L, 2L))
    g.``to``(torch.float64) |> ignore
    g

/// max over samples of ‖z_final − reference‖.
let private error (final: torch.Tensor) (reference: torch.Tensor) =
    use d = (final - reference).square().sum(1L).sqrt().max()
    d.ToDouble()

[<Tests>]
let tests =
    testList "Hypersolvers" [
        test "a trained hyper-Euler in 10 steps is as accurate as Euler with at least 4× the steps" {
            let field, f = neuralField ()
            use _field = field
            use g = correction ()
            let hyper = Hypersolver(Solvers.euler, g)
            use generator = torch.Generator(5UL)
            use training = torch.randn([| 1024L; 2L |], dtype = torch.float64, generator = generator)
            let losses = Hypersolver.train hyper f training 0.0 1.0 10 600 3e-3 1e-9
            Expect.isLessThan losses[losses.Length - 1] (0.2 * losses[0]) "the residual fit improves"
            use z0 = torch.randn([| 512L; 2L |], dtype = torch.float64, generator = generator)
            use _ = torch.no_grad()
            use reference = (Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-10 1e-10)).Final.clone()
            use hyperStates = hyper.Solve(f, z0, 0.0, 1.0, 10)
            let hyperError = error hyperStates[10L] reference
            let eulerError (steps: int) =
                use s = Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.euler (StepControl.steps steps)
                error s.Final reference
            let counts = [ 10; 20; 40; 80; 160; 320 ]
            let errors = counts |> List.map (fun n -> n, eulerError n)
            let matched = errors |> List.tryFind (fun (_, e) -> e <= hyperError) |> Option.map fst
            let text = String.Join(", ", errors |> List.map (fun (n, e) -> $"{n}: {e:E2}"))
            match matched with
            | Some n -> Expect.isGreaterThanOrEqual n 40 $"hyper-Euler 10 steps: {hyperError:E2}; Euler needs {n} steps ({text})"
            | None -> ()   // Euler never reaches it within 320 steps: better still.
            Expect.isLessThan hyperError (0.25 * snd errors[0]) $"hyper-Euler {hyperError:E2} against Euler's {snd errors[0]:E2} at 10 steps"
        }
        test "the residual targets are (z(t+h) − z − h ψ)/h^{p+1}, and an untrained correction of zero gives the base method" {
            let field, f = neuralField ()
            use _field = field
            use g = correction ()
            let zero () =
                use _ = torch.no_grad()
                for p in g.parameters() do p.zero_() |> ignore
            zero ()
            let hyper = Hypersolver(Solvers.midpoint, g)
            use z0 = torch.randn([| 4L; 2L |], dtype = torch.float64)
            use _ = torch.no_grad()
            use states = hyper.Solve(f, z0, 0.0, 1.0, 5)
            use midpoint = Ode.odeint f z0 [| 0.0; 1.0 |] Solvers.midpoint (StepControl.steps 5)
            Expect.isLessThan (error states[5L] midpoint.Final) 1e-14 "zero correction = midpoint"
            let inputs, targets = hyper.Residuals(f, states, 0.0, 1.0)
            use _i = inputs
            use _t = targets
            Expect.equal inputs.shape [| 20L; 4L |] "inputs [steps·N, 2d]"
            Expect.isLessThan (targets.abs().max().ToDouble()) 1e-10 "the base method's own trajectory has zero residuals"
        }
        test "bad input is named" {
            let field, f = neuralField ()
            use _field = field
            use g = correction ()
            let hyper = Hypersolver(Solvers.euler, g)
            use flat = torch.zeros([| 2L |], dtype = torch.float64)
            Expect.equal (Raises.raises<ArgumentException> (fun () -> hyper.Solve(f, flat, 0.0, 1.0, 4) |> ignore)).ParamName "z" "a batch of vectors"
            use z0 = torch.zeros([| 3L; 2L |], dtype = torch.float64)
            Expect.equal (Raises.raises<ArgumentOutOfRangeException> (fun () -> hyper.Solve(f, z0, 0.0, 1.0, 0) |> ignore)).ParamName "steps" "steps"
            use wide = Sequential(Linear(4L, 3L))
            wide.``to``(torch.float64) |> ignore
            let bad = Hypersolver(Solvers.euler, wide)
            Expect.equal (Raises.raises<ArgumentException> (fun () -> bad.Solve(f, z0, 0.0, 1.0, 2) |> ignore)).ParamName "correction" "the correction's shape"
        }
    ]
