/// Multiple shooting against the sequential solve it replaces: every variant reaches the sequential boundary states
/// (same fine solver and steps per segment) on a depth-varying tanh MLP; on dz/dt = A z the Newton variants converge
/// in one sweep from any guess and the zeroth-order sweep fixes one more segment per sweep; the gradients with
/// respect to z0 and a weight are autograd's through the sequential solve; bad arguments are named.
module NeuralOde.Tests.MultipleShooting.MultipleShootingTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

let private variants = [ ShootingVariant.Zero; ShootingVariant.Direct; ShootingVariant.Forward; ShootingVariant.Backward ]

/// Non-uniform boundaries: N = 5 segments.
let private times = [| 0.0; 0.3; 0.7; 1.2; 1.5; 2.0 |]
let private fineSteps = 4

/// Fixed weights from a formula (no generator): W1 [2, 8], b1 [8], c [8], W2 [8, 2].
let private weight (rows: int) (cols: int) (seed: float) =
    let values = Array.init (rows * cols) (fun i -> 0.9 * sin (seed + 1.7 * float i))
    let t = Tensors.f64 values
    t.reshape(int64 rows, int64 cols)

/// f(t, z) = tanh(z W1 + b1 + t c) W2: nonlinear and depth-varying.
let private mlp (w1: torch.Tensor) (b1: torch.Tensor) (c: torch.Tensor) (w2: torch.Tensor) : VectorField =
    fun t z ->
        use tc = c.mul(torch.tensor(t, dtype = torch.float64))
        use h = z.matmul(w1).add(b1).add(tc)
        use a = h.tanh()
        a.matmul(w2)

/// The sequential solve: the same fine solver and steps over each segment, one after the other.
let private sequential (f: VectorField) (z0: torch.Tensor) =
    let states = ResizeArray<torch.Tensor>([ z0.alias() ])
    for k in 0 .. times.Length - 2 do
        use s = Ode.odeint f states[k] [| times[k]; times[k + 1] |] Solvers.rk4 (StepControl.steps fineSteps)
        states.Add(s.States.select(0L, 1L))
    let stacked = torch.stack(states, 0L)
    for s in states do s.Dispose()
    stacked

let private z0Values = [| 0.5; -1.0; 1.5; 0.2; -0.7; 0.9 |]

[<Tests>]
let tests =
    testList "MultipleShooting" [
        for variant in variants do
            test $"{variant}: equals the sequential solve to 1e-10 on a depth-varying tanh MLP" {
                use w1 = weight 2 8 0.3
                use b1 = weight 1 8 1.1
                use c = weight 1 8 2.3
                use w2 = weight 8 2 -0.4
                let f = mlp w1 b1 c w2
                use z0 = (Tensors.f64 z0Values).reshape(3L, 2L)
                use reference = sequential f z0
                let watch = Diagnostics.Stopwatch.StartNew()
                use solution = MultipleShooting.solve variant f z0 times Solvers.rk4 fineSteps 10 1e-12
                let error = Tensors.maxAbsDiff solution.States reference
                printfn "MultipleShooting %A: iterations %d, defects %A, max |B − sequential| %.2e, %d ms"
                    variant solution.Iterations solution.Defects error watch.ElapsedMilliseconds
                Expect.isTrue solution.Converged "converged"
                Expect.isLessThanOrEqual solution.Iterations (times.Length - 1) "at most N sweeps"
                Expect.isLessThan error 1e-10 "boundary states equal the sequential solve's"
                Expect.equal solution.States.shape [| 6L; 3L; 2L |] "shape [N + 1, ...z0.shape]"
            }

        test "linear dz/dt = A z: Direct and Forward converge in one sweep from any guess (Newton is exact)" {
            use a = Tensors.f64m [| [| -0.5; 1.0 |]; [| -1.3; -0.3 |] |]
            let f: VectorField = fun _ z -> z.matmul(a)
            use z0 = (Tensors.f64 z0Values).reshape(3L, 2L)
            use reference = sequential f z0
            use guess = (Tensors.f64 (Array.create 36 5.0)).reshape(6L, 3L, 2L)
            for variant in [ ShootingVariant.Direct; ShootingVariant.Forward ] do
                use fromCoarse = MultipleShooting.solve variant f z0 times Solvers.rk4 fineSteps 10 1e-13
                use fromGuess = MultipleShooting.solveFrom guess variant f z0 times Solvers.rk4 fineSteps 10 1e-13
                for name, s in [ "coarse guess", fromCoarse; "constant guess 5", fromGuess ] do
                    printfn "MultipleShooting linear %A from %s: defects %A" variant name s.Defects
                    Expect.equal s.Iterations 1 $"{variant} from the {name}: one sweep"
                    Expect.isLessThan s.Defects[1] 1e-14 $"{variant} from the {name}: defect at rounding level after one sweep"
                    Expect.isLessThan (Tensors.maxAbsDiff s.States reference) 1e-13 "equals the sequential solve"
        }

        test "linear dz/dt = A z, A symmetric: Backward (Jᵀ for J) is Newton too and converges in one sweep" {
            use a = Tensors.f64m [| [| -0.5; 0.8 |]; [| 0.8; -0.3 |] |]
            let f: VectorField = fun _ z -> z.matmul(a)
            use z0 = Tensors.f64 [| 1.0; -2.0 |]
            use s = MultipleShooting.solve ShootingVariant.Backward f z0 times Solvers.rk4 fineSteps 10 1e-13
            Expect.equal s.Iterations 1 "one sweep"
        }

        test "linear dz/dt = A z: Zero fixes one more segment per sweep and converges in at most N sweeps" {
            use a = Tensors.f64m [| [| -0.5; 1.0 |]; [| -1.3; -0.3 |] |]
            let f: VectorField = fun _ z -> z.matmul(a)
            use z0 = (Tensors.f64 z0Values).reshape(3L, 2L)
            use guess = (Tensors.f64 (Array.create 36 5.0)).reshape(6L, 3L, 2L)
            use s = MultipleShooting.solveFrom guess ShootingVariant.Zero f z0 times Solvers.rk4 fineSteps 10 1e-13
            printfn "MultipleShooting linear Zero: iterations %d, segment defects %A" s.Iterations s.SegmentDefects
            Expect.isTrue s.Converged "converged"
            Expect.isLessThanOrEqual s.Iterations (times.Length - 1) "at most N sweeps"
            s.SegmentDefects |> Array.iteri (fun i d ->
                for k in 0 .. min i d.Length - 1 do
                    Expect.equal d[k] 0.0 $"after {i} sweeps segment {k} is fixed")
            let fixedCount = s.SegmentDefects |> Array.map (fun d -> d |> Array.takeWhile (fun x -> x = 0.0) |> Array.length)
            Expect.equal fixedCount (Array.sort fixedCount) $"fixed segments never decrease: %A{fixedCount}"
        }

        for variant in [ ShootingVariant.Zero; ShootingVariant.Forward; ShootingVariant.Direct; ShootingVariant.Backward ] do
            test $"{variant}: gradients with respect to z0 and a weight equal autograd through the sequential solve to 1e-10" {
                use w1 = (weight 2 8 0.3).requires_grad_(true)
                use b1 = weight 1 8 1.1
                use c = weight 1 8 2.3
                use w2 = weight 8 2 -0.4
                let f = mlp w1 b1 c w2
                use z0 = (Tensors.f64 z0Values).reshape(3L, 2L).requires_grad_(true)
                use probe = torch.linspace(-1.0, 1.0, 36L, dtype = torch.float64).reshape(6L, 3L, 2L)
                let gradients (states: torch.Tensor) =
                    use loss = states.mul(probe).sum()
                    let g = torch.autograd.grad([| loss |], [| z0; w1 |])
                    Tensors.toArray g[0], Tensors.toArray g[1]
                use reference = sequential f z0
                let gz, gw = gradients reference
                use solution = MultipleShooting.solve variant f z0 times Solvers.rk4 fineSteps 10 1e-12
                let sz, sw = gradients solution.States
                let errZ = Array.map2 (fun a b -> abs (a - b)) sz gz |> Array.max
                let errW = Array.map2 (fun a b -> abs (a - b)) sw gw |> Array.max
                printfn "MultipleShooting %A gradients: max error dL/dz0 %.2e, dL/dW1 %.2e" variant errZ errW
                Expect.isLessThan errZ 1e-10 "dL/dz0"
                Expect.isLessThan errW 1e-10 "dL/dW1"
            }

        test "bad arguments are named" {
            let f: VectorField = fun _ z -> z.neg()
            use z0 = Tensors.f64 [| 1.0; 2.0 |]
            let named (argument: string) (action: unit -> ShootingSolution) =
                let e = Raises.raises<ArgumentException> (fun () -> (action ()).States.Dispose())
                Expect.equal e.ParamName argument e.Message
            let run times = MultipleShooting.solve ShootingVariant.Forward f z0 times Solvers.rk4 2 5 1e-10
            named "times" (fun () -> run [| 0.0; 1.0; 1.0 |])
            named "times" (fun () -> run [| 0.0; 2.0; 1.0 |])
            named "times" (fun () -> run [| 1.0; 0.0 |])
            named "times" (fun () -> run [| 0.0 |])
            named "times" (fun () -> run [||])
            named "times" (fun () -> run [| 0.0; nan |])
            use bad = Tensors.f64 [| 1.0; nan |]
            named "z0" (fun () -> MultipleShooting.solve ShootingVariant.Zero f bad [| 0.0; 1.0 |] Solvers.rk4 2 5 1e-10)
            use ints = torch.tensor([| 1L; 2L |])
            named "z0" (fun () -> MultipleShooting.solve ShootingVariant.Zero f ints [| 0.0; 1.0 |] Solvers.rk4 2 5 1e-10)
            named "fineSteps" (fun () -> MultipleShooting.solve ShootingVariant.Zero f z0 [| 0.0; 1.0 |] Solvers.rk4 0 5 1e-10)
            named "maxIterations" (fun () -> MultipleShooting.solve ShootingVariant.Zero f z0 [| 0.0; 1.0 |] Solvers.rk4 2 -1 1e-10)
            named "tolerance" (fun () -> MultipleShooting.solve ShootingVariant.Zero f z0 [| 0.0; 1.0 |] Solvers.rk4 2 5 0.0)
            named "tolerance" (fun () -> MultipleShooting.solve ShootingVariant.Zero f z0 [| 0.0; 1.0 |] Solvers.rk4 2 5 nan)
            use wrongGuess = torch.zeros([| 3L; 3L |], dtype = torch.float64)
            named "initialGuess" (fun () -> MultipleShooting.solveFrom wrongGuess ShootingVariant.Zero f z0 [| 0.0; 1.0 |] Solvers.rk4 2 5 1e-10)
            use floatGuess = torch.zeros([| 2L; 2L |], dtype = torch.float32)
            named "initialGuess" (fun () -> MultipleShooting.solveFrom floatGuess ShootingVariant.Zero f z0 [| 0.0; 1.0 |] Solvers.rk4 2 5 1e-10)
            let wrongShape: VectorField = fun _ z -> torch.cat([| z; z |], 0L)
            named "field" (fun () -> MultipleShooting.solve ShootingVariant.Forward wrongShape z0 [| 0.0; 1.0; 2.0 |] Solvers.rk4 2 5 1e-10)
            use big = torch.zeros([| 2000L |], dtype = torch.float64)
            named "variant" (fun () -> MultipleShooting.solve ShootingVariant.Direct f big (Array.init 30 float) Solvers.rk4 2 5 1e-10)
        }

        test "no sweeps when the guess already meets the tolerance; the defect history starts at the guess" {
            let f: VectorField = fun _ z -> z.neg()
            use z0 = Tensors.f64 [| 1.0; 2.0 |]
            use exact = sequential f z0
            use s = MultipleShooting.solveFrom exact ShootingVariant.Forward f z0 times Solvers.rk4 fineSteps 10 1e-12
            Expect.equal s.Iterations 0 "no sweep"
            Expect.equal s.Defects.Length 1 "one defect: the guess's"
            use none = MultipleShooting.solve ShootingVariant.Zero f z0 times Solvers.rk4 fineSteps 0 1e-12
            Expect.isFalse none.Converged "a coarse guess with no sweeps does not meet 1e-12"
        }
    ]
