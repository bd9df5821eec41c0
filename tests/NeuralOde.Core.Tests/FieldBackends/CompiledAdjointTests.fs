module NeuralOde.Tests.FieldBackends.CompiledAdjointTests

open System
open System.Threading
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.FieldBackends.Mlp
open NeuralOde.Tests.Support
open NeuralOde.Tests.FieldBackends.CompiledBlocks

/// A block over the field with the adjoint options, its output and gradients by the fused adjoint and by the generic
/// one, with the forward and backward statistics of each.
let private bothWays (field: TorchSharp.Modules.Sequential) (solver: ButcherTableau) (control: StepControl) (options: AdjointOptions) (times: float[]) (x: Tensor) =
    // Not disposed: that would dispose the field, which the caller uses again.
    let block = new NeuralOdeModel(field, solver, control, Sensitivity.Adjoint options, times)
    let run fused =
        let y, g, s = outputAndGradients block x fused
        let b = block.LastBackwardStatistics
        (y, g, s), (b.FunctionEvaluations, b.AcceptedSteps, b.RejectedSteps, b.BackwardPasses)
    let fused, backFused = run true
    let generic, backGeneric = run false
    fused, backFused, generic, backGeneric

let private compare (what: string) (field: TorchSharp.Modules.Sequential) solver control options times (x: Tensor) =
    let fused, backFused, generic, backGeneric = bothWays field solver control options times x
    agree 1e-9 what fused generic
    Expect.equal backFused backGeneric $"{what}: the backward solves' evaluations, steps and passes"

let private adaptive rtol = StepControl.adaptive rtol rtol

[<Tests>]
let tests =
    testList "FieldBackends/CompiledAdjoint" [
        test "float64: output, gradients and both solves' statistics equal the generic adjoint's, every adaptive tableau" {
            use field = mlp torch.float64 2 16 "tanh" 31
            use x = input [| 24L; 2L |] torch.float64 201
            for solver in [ Solvers.bosh3; Solvers.dopri5; Solvers.tsit5; Solvers.dopri8 ] do
                compare solver.Name field solver (adaptive 1e-7) Sensitivity.defaultOptions [| 0.0; 1.0 |] x
        }
        test "float64: fixed steps, the seminorm, checkpoints, several and backward output times, another backward method" {
            use field = mlp torch.float64 3 12 "softplus" 32
            use x = input [| 10L; 3L |] torch.float64 202
            let d = Sensitivity.defaultOptions
            compare "rk4 steps" field Solvers.rk4 (StepControl.steps 7) d [| 0.0; 1.0 |] x
            compare "euler fixed dt (shortened last step)" field Solvers.euler (StepControl.fixedStep 0.13) d [| 0.0; 1.0 |] x
            compare "seminorm" field Solvers.dopri5 (adaptive 1e-8) { d with Seminorm = true } [| 0.0; 1.0 |] x
            compare "checkpoints" field Solvers.dopri5 (adaptive 1e-6) { d with Checkpoints = 3 } [| 0.0; 1.0 |] x
            compare "several output times" field Solvers.tsit5 (adaptive 1e-6) d [| 0.0; 0.25; 0.6; 1.5 |] x
            compare "backward in time" field Solvers.dopri5 (adaptive 1e-6) d [| 2.0; 0.5 |] x
            compare "backward solve by RK4 steps" field Solvers.dopri5 (adaptive 1e-6) { d with Solver = Some Solvers.rk4; Control = Some(StepControl.steps 9) } [| 0.0; 1.0 |] x
            let pi = StepControl.Adaptive { StepControl.defaults with RTol = 1e-6; ATol = 1e-7; PCoeff = 0.2; ICoeff = 0.8; MaxStep = 0.15 }
            compare "PI control with a largest step" field Solvers.dopri5 pi d [| 0.0; 1.0 |] x
            let given = StepControl.Adaptive { StepControl.defaults with RTol = 1e-6; ATol = 1e-6; InitialStep = Some 0.01; MaxFactor = 3.0 }
            compare "a given first step" field Solvers.bosh3 given d [| 0.0; 1.0 |] x
        }
        test "float64: Galerkin layers, an N-D state, a 1-D state, and a frozen parameter" {
            for basis in [ Basis.fourier 2 1.0; Basis.chebyshev 3 1.0 ] do
                let g = new GalLinear(2L, 12L, basis, torch.float64)
                use field = Sequential(g :> Layer, Tanh(), Linear(12L, 12L), Tanh(), Linear(12L, 2L))
                field.``to``(torch.float64) |> ignore
                Tensors.initialize 33 0.4 field
                use x = input [| 15L; 2L |] torch.float64 203
                compare basis.Name field Solvers.dopri5 (adaptive 1e-7) Sensitivity.defaultOptions [| 0.0; 1.0 |] x
            use field = mlp torch.float64 2 8 "sigmoid" 34
            use nd = input [| 3L; 4L; 2L |] torch.float64 204
            compare "N-D" field Solvers.dopri5 (adaptive 1e-7) Sensitivity.defaultOptions [| 0.0; 1.0 |] nd
            use one = input [| 2L |] torch.float64 205
            compare "1-D" field Solvers.dopri5 (adaptive 1e-7) Sensitivity.defaultOptions [| 0.0; 1.0 |] one
            let first = field.parameters() |> Seq.head
            first.requires_grad_(false) |> ignore
            compare "frozen W₁" field Solvers.dopri5 (adaptive 1e-7) Sensitivity.defaultOptions [| 0.0; 1.0 |] nd
            first.requires_grad_(true) |> ignore
        }
        test "float32: agrees with the generic adjoint to float32 rounding" {
            use field = mlp torch.float32 2 64 "tanh" 35
            use x = input [| 256L; 2L |] torch.float32 206
            let (yF, gF, _), _, (yG, gG, _), _ = bothWays field Solvers.dopri5 (adaptive 1e-5) Sensitivity.defaultOptions [| 0.0; 1.0 |] x
            Expect.isLessThan (Tensors.relativeError yF yG) 1e-4 "output"
            List.iteri2 (fun i a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-3 $"gradient {i}") gF gG
        }
        testSequenced <| test "rows in chunks evaluated side by side (the adjoint and the flow) equal the module's adjoint" {
            // Three threads for the chunks of 800 rows (chunks of at least 256 rows: three); libtorch's own count is
            // restored after (sequenced: it is process-wide).
            let savedThreads = torch.get_num_threads ()
            torch.set_num_threads 3
            try
                use field = mlp torch.float64 2 16 "tanh" 43
                use x = input [| 800L; 2L |] torch.float64 217
                compare "3 chunks" field Solvers.dopri5 (adaptive 1e-7) { Sensitivity.defaultOptions with Seminorm = true } [| 0.0; 1.0 |] x
                let g = new GalLinear(2L, 12L, Basis.fourier 2 1.0, torch.float64)
                use galerkin = Sequential(g :> Layer, Tanh(), Linear(12L, 2L))
                galerkin.``to``(torch.float64) |> ignore
                Tensors.initialize 44 0.4 galerkin
                compare "3 chunks, Galerkin" galerkin Solvers.tsit5 (adaptive 1e-7) Sensitivity.defaultOptions [| 0.0; 1.0 |] x
                Expect.equal (torch.get_num_threads ()) 3 "the thread count is restored"
                // The flow: log p and its gradients, chunked, against the module's adjoint.
                let logpAndGradients fused =
                    use probes = new torch.Generator(9UL)
                    // Not disposed: that would dispose the field, which both runs use.
                    let flow = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.dopri5, adaptive 1e-7, Sensitivity.adjoint, 0.0, 1.0, probes)
                    flow.Backend <- Compiled.choice fused
                    for p in field.parameters() do p.grad <- null
                    use logp = flow.LogProbability x
                    Expect.equal (Compiled.ran flow) fused "the path asked for"
                    Ode.backward (logp.mean().neg())
                    Tensors.toArray logp, [ for p in field.parameters() -> Tensors.toArray p.grad ], flow.LastBackwardStatistics.FunctionEvaluations
                let lF, gF, bF = logpAndGradients true
                let lG, gG, bG = logpAndGradients false
                Expect.isLessThan (Tensors.relativeError lF lG) 1e-9 "flow: log p"
                List.iter2 (fun a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-9 "flow: a gradient") gF gG
                Expect.equal bF bG "flow: backward evaluations"
            finally
                torch.set_num_threads savedThreads
        }
        test "gradients match central finite differences of the solve (float64)" {
            use field = mlp torch.float64 2 6 "tanh" 36
            use block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-10, Sensitivity.adjoint, [| 0.0; 1.0 |])
            use x = input [| 3L; 2L |] torch.float64 207
            let _, gradients, _ = outputAndGradients block x true
            let loss (z: Tensor) =
                use _ = torch.no_grad()
                use y = block.forward z
                use w = torch.linspace(-1.0, 1.0, y.numel(), dtype = y.dtype).reshape(y.shape)
                use l = (y * y * w).sum()
                l.ToDouble()
            let eps = 1e-6
            let flat = Tensors.toArray x
            let numeric =
                Array.init flat.Length (fun i ->
                    let shifted (d: float) =
                        use z = torch.tensor(Array.mapi (fun j v -> if j = i then v + d else v) flat, dtype = torch.float64).reshape(x.shape)
                        loss z
                    (shifted eps - shifted -eps) / (2.0 * eps))
            Expect.isLessThan (Tensors.relativeError gradients.Head numeric) 1e-6 "dL/dx against finite differences"
        }
        test "inference (no gradient wanted) with adaptive steps and autograd runs on the fused buffers, same output" {
            use field = mlp torch.float64 2 10 "tanh" 37
            use block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-7, [| 0.0; 1.0 |])
            use x = input [| 12L; 2L |] torch.float64 208
            let solve fused =
                block.Backend <- Compiled.choice (fused)
                use _ = torch.no_grad()
                use y = block.forward x
                Tensors.toArray y, (Compiled.ran block), block.LastStatistics
            let yF, ranFused, sF = solve true
            let yG, ranGeneric, sG = solve false
            Expect.isTrue ranFused "no gradient: fused"
            Expect.isFalse ranGeneric "switched off"
            Expect.isLessThan (Tensors.relativeError yF yG) 1e-12 "output"
            Expect.equal (Compiled.counts sF) (Compiled.counts sG) "statistics"
            block.Backend <- Compiled.choice (true)
            use graded = block.forward (x.detach().clone().requires_grad_(true))
            Expect.isFalse (Compiled.ran block) "a gradient through adaptive steps by autograd: the generic solver"
        }
        test "failures are the generic adjoint's: the step budget forward and backward, NaN input, cancellation" {
            use field = mlp torch.float64 2 8 "tanh" 38
            use x = input [| 6L; 2L |] torch.float64 209
            let tight = StepControl.Adaptive { StepControl.defaults with RTol = 1e-10; ATol = 1e-10; MaxSteps = 3 }
            let failure fused =
                let block = new NeuralOdeModel(field, Solvers.dopri5, tight, Sensitivity.adjoint, [| 0.0; 1.0 |])
                block.Backend <- Compiled.choice (fused)
                let e = Raises.raises<OdeSolveException> (fun () -> block.forward x |> ignore)
                e.Failure, e.Time
            // The step sizes agree to rounding (the error norms are summed in another order), not bit for bit.
            let (kindF, timeF), (kindG, timeG) = failure true, failure false
            Expect.equal kindF kindG "forward: the same failure"
            Expect.floatClose Accuracy.high timeF timeG "forward: at the same time"
            let backwardFailure fused =
                let options = { Sensitivity.defaultOptions with Control = Some tight }
                let block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-6, Sensitivity.Adjoint options, [| 0.0; 1.0 |])
                block.Backend <- Compiled.choice (fused)
                use xg = x.detach().clone().requires_grad_(true)
                use y = block.forward xg
                Expect.equal (Compiled.ran block) fused "the path asked for"
                use loss = y.sum()
                let e = Raises.raises<OdeSolveException> (fun () -> Ode.backward loss)
                e.Failure, e.Time
            let (kindF, timeF), (kindG, timeG) = backwardFailure true, backwardFailure false
            Expect.equal kindF kindG "backward: the same failure"
            Expect.floatClose Accuracy.high timeF timeG "backward: at the same time"
            use block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-6, Sensitivity.adjoint, [| 0.0; 1.0 |])
            use bad = x.clone()
            bad[0L, 0L] <- torch.tensor(nan, dtype = torch.float64)
            let e = Raises.raises<ArgumentException> (fun () -> block.forward bad |> ignore)
            Expect.equal e.ParamName "x0" "NaN input names x0"
            use cts = new CancellationTokenSource()
            cts.Cancel()
            Raises.raises<OperationCanceledException> (fun () -> Cancellation.within cts.Token (fun () -> block.forward x |> ignore)) |> ignore
        }
        test "retain_graph: a second backward pass adds the same gradients, also after later solves of the block" {
            use field = mlp torch.float64 2 8 "tanh" 39
            use block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-7, Sensitivity.adjoint, [| 0.0; 1.0 |])
            use x = input [| 5L; 2L |] torch.float64 210
            use xg = x.detach().clone().requires_grad_(true)
            use y = block.forward xg
            use loss = y.square().sum()
            loss.backward(retain_graph = true)
            let once = Tensors.toArray xg.grad
            loss.backward(retain_graph = true)
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray xg.grad) (Array.map ((*) 2.0) once)) 1e-12 "twice the gradient"
            Expect.equal block.LastBackwardStatistics.BackwardPasses 2 "two passes"
            // Each pass rents its own workspace; the backward pass needs only the checkpoints its forward pass kept.
            use other = input [| 5L; 2L |] torch.float64 213
            use y2 = block.forward other
            use _ = torch.no_grad()
            use y3 = block.forward other
            Ode.backward loss
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray xg.grad) (Array.map ((*) 3.0) once)) 1e-12 "three times, after two later solves"
        }
        test "a parameter replaced by another tensor of its shape: the flow's pooled workspaces read the new one" {
            // (A NeuralOdeModel refuses a field whose constructed parameters were disposed, as TorchSharp does to a
            // replaced one; a flow takes its field's parameters as they are at each solve.)
            use field = mlp torch.float64 2 8 "tanh" 41
            let flow = new Cnf("cnf", field, 2, Exact, Solvers.dopri5, adaptive 1e-7, Sensitivity.adjoint, 0.0, 1.0, null)
            use z = input [| 6L; 2L |] torch.float64 214
            let decode fused =
                flow.Backend <- Compiled.choice (fused)
                use _ = torch.no_grad()
                use x = flow.Decode(z, null)
                Expect.equal (Compiled.ran flow) fused "the path asked for"
                Tensors.toArray x
            decode true |> ignore
            let first = field.children() |> Seq.head :?> TorchSharp.Modules.Linear
            first.weight <- TorchSharp.Modules.Parameter(input [| 8L; 2L |] torch.float64 215)
            let fused, generic = decode true, decode false
            Expect.isLessThan (Tensors.relativeError fused generic) 1e-12 "the new weight is used"
        }
        test "checkpoint counts the generic adjoint refuses are refused the same way" {
            use field = mlp torch.float64 2 8 "tanh" 42
            use x = input [| 4L; 2L |] torch.float64 216
            let options = { Sensitivity.defaultOptions with Checkpoints = Ode.maxCheckpointGrid }
            use block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-6, Sensitivity.Adjoint options, [| 0.0; 1.0 |])
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> block.forward x |> ignore)
            Expect.equal e.ParamName "checkpoints" "names the checkpoints"
        }
        test "training: 25 Adam steps by the fused adjoint follow the generic adjoint's (float64)" {
            let train fused =
                use field = mlp torch.float64 2 12 "tanh" 40
                use block = new NeuralOdeModel(field, Solvers.dopri5, adaptive 1e-7, Sensitivity.adjoint, [| 0.0; 1.0 |])
                block.Backend <- Compiled.choice (fused)
                use optimizer = torch.optim.Adam(block.parameters(), lr = 0.01)
                use x = input [| 32L; 2L |] torch.float64 211
                use target = input [| 32L; 2L |] torch.float64 212
                let losses =
                    [| for _ in 1 .. 25 do
                         use _ = torch.NewDisposeScope()
                         optimizer.zero_grad()
                         let loss = (block.forward x - target).square().mean()
                         Ode.backward loss
                         optimizer.step() |> ignore
                         yield loss.ToDouble() |]
                Expect.equal (Compiled.ran block) fused "the path asked for"
                losses
            let fused, generic = train true, train false
            Expect.isLessThan (Tensors.relativeError fused generic) 1e-9 "the same losses"
            Expect.isLessThan fused[24] fused[0] "it learns"
        }
    ]
