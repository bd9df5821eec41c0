module NeuralOde.Tests.FieldBackends.CompiledFlowTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.FieldBackends.CompiledBlocks

/// −mean log p(x) by the flow and its gradients w.r.t. x and every parameter (zeros for one without), by the fused
/// or the generic path, with both solves' statistics. The probes come from a generator seeded afresh for each run.
let private nllAndGradients (field: TorchSharp.Modules.Sequential) (trace: TraceEstimator) (sensitivity: Sensitivity) (control: StepControl) (x: Tensor) (fused: bool) =
    use g = new torch.Generator(5UL)
    // Not disposed: that would dispose the field, which the caller uses again.
    let cnf = new Cnf("cnf", field, int x.shape[1], trace, Solvers.dopri5, control, sensitivity, 0.0, 1.0, g)
    cnf.Backend <- Compiled.choice (fused)
    use xg = x.detach().clone().requires_grad_(true)
    for p in cnf.parameters() do p.grad <- null
    use logp = cnf.LogProbability(xg)
    Expect.equal (Compiled.ran cnf) fused "the path asked for ran"
    use loss = logp.mean().neg()
    Ode.backward loss
    let gradient (p: Tensor) = if isNull p.grad then Array.zeroCreate (int (p.numel())) else Tensors.toArray p.grad
    let b = cnf.LastBackwardStatistics
    (Tensors.toArray logp, [ yield Tensors.toArray xg.grad; for p in cnf.parameters() -> gradient p ], cnf.LastStatistics),
    (b.FunctionEvaluations, b.AcceptedSteps, b.RejectedSteps)

let private field (dtype: torch.ScalarType) (act: string) (seed: int) =
    let f = Sequential(Linear(2L, 16L), activation act, Linear(16L, 16L), activation act, Linear(16L, 2L))
    f.``to``(dtype) |> ignore
    Tensors.initialize seed 0.5 f
    f

let private compare (what: string) (f: TorchSharp.Modules.Sequential) trace sensitivity control (x: Tensor) =
    let fused, backFused = nllAndGradients f trace sensitivity control x true
    let generic, backGeneric = nllAndGradients f trace sensitivity control x false
    agree 1e-9 what fused generic
    Expect.equal backFused backGeneric $"{what}: the backward solves' statistics"

[<Tests>]
let tests =
    testList "FieldBackends/CompiledFlow" [
        test "float64: log p, its gradients and both solves' statistics equal the generic adjoint's, each activation and trace" {
            use x = input [| 10L; 2L |] torch.float64 301
            for act in [ "tanh"; "softplus"; "sigmoid"; "relu" ] do
                use f = field torch.float64 act 41
                for trace in (if act = "softplus" then [ Hutchinson Gaussian; Hutchinson Rademacher; Exact ] else [ Hutchinson Gaussian ]) do
                    compare $"{act} {trace}" f trace Sensitivity.adjoint (StepControl.adaptive 1e-6 1e-6) x
        }
        test "float64: the seminorm, checkpoints, a Galerkin layer, a frozen parameter" {
            use x = input [| 12L; 2L |] torch.float64 302
            use f = field torch.float64 "softplus" 42
            let adjoint o = Sensitivity.Adjoint o
            let d = Sensitivity.defaultOptions
            compare "seminorm" f (Hutchinson Gaussian) (adjoint { d with Seminorm = true }) (StepControl.adaptive 1e-7 1e-7) x
            compare "checkpoints" f (Hutchinson Gaussian) (adjoint { d with Checkpoints = 2 }) (StepControl.adaptive 1e-6 1e-6) x
            compare "fixed steps" f Exact Sensitivity.adjoint (StepControl.steps 6) x
            let first = f.parameters() |> Seq.head
            first.requires_grad_(false) |> ignore
            compare "frozen W₁" f (Hutchinson Gaussian) Sensitivity.adjoint (StepControl.adaptive 1e-7 1e-7) x
            first.requires_grad_(true) |> ignore
            let g = new GalLinear(2L, 12L, Basis.fourier 2 1.0, torch.float64)
            use galerkin = Sequential(g :> Layer, Tanh(), Linear(12L, 12L), Softplus(), Linear(12L, 2L))
            galerkin.``to``(torch.float64) |> ignore
            Tensors.initialize 43 0.4 galerkin
            compare "Galerkin" galerkin (Hutchinson Rademacher) Sensitivity.adjoint (StepControl.adaptive 1e-7 1e-7) x
        }
        test "float32 (SIMD element-wise kernels): agrees with the generic adjoint to float32 rounding" {
            use x = input [| 128L; 2L |] torch.float32 303
            for act in [ "softplus"; "tanh" ] do
                use f = field torch.float32 act 44
                let (yF, gF, _), _ = nllAndGradients f (Hutchinson Gaussian) Sensitivity.adjoint (StepControl.adaptive 1e-5 1e-5) x true
                let (yG, gG, _), _ = nllAndGradients f (Hutchinson Gaussian) Sensitivity.adjoint (StepControl.adaptive 1e-5 1e-5) x false
                Expect.isLessThan (Tensors.relativeError yF yG) 1e-4 $"{act}: log p"
                List.iteri2 (fun i a b -> Expect.isLessThan (Tensors.relativeError a b) 2e-3 $"{act}: gradient {i}") gF gG
        }
        test "the parameters' gradients match central finite differences of the flow's loss (float64, exact trace)" {
            use x = input [| 4L; 2L |] torch.float64 304
            use f = field torch.float64 "softplus" 45
            let tight = StepControl.adaptive 1e-9 1e-9
            let (_, grads, _), _ = nllAndGradients f Exact Sensitivity.adjoint tight x true
            // Not disposed: that would dispose the field.
            let cnf = new Cnf("cnf", f, 2, Exact, Solvers.dopri5, tight, Sensitivity.adjoint, 0.0, 1.0, null)
            let w = f.parameters() |> Seq.item 2
            let flat = Tensors.toArray w
            let loss () =
                use _ = torch.no_grad()
                use logp = cnf.LogProbability(x)
                -(logp.mean().ToDouble())
            let set (i: int) (v: float) =
                use _ = torch.no_grad()
                use view = w.view(-1L)
                view[int64 i] <- torch.tensor(v, dtype = torch.float64)
            let eps = 1e-6
            let numeric =
                Array.init 6 (fun i ->
                    set i (flat[i] + eps)
                    let up = loss ()
                    set i (flat[i] - eps)
                    let down = loss ()
                    set i flat[i]
                    (up - down) / (2.0 * eps))
            Expect.isTrue (Compiled.ran cnf) "fused"
            let analytic = grads[3][0 .. 5]
            Expect.isLessThan (Tensors.relativeError analytic numeric) 1e-5 "dL/dW₂ against finite differences"
        }
        test "Decode and inference without gradients run fused and equal the generic path" {
            use z = input [| 10L; 2L |] torch.float64 305
            use f = field torch.float64 "tanh" 46
            let run fused =
                use g = new torch.Generator(5UL)
                let cnf = new Cnf("cnf", f, 2, Hutchinson Gaussian, Solvers.dopri5, StepControl.adaptive 1e-8 1e-8, Sensitivity.Autograd, 0.0, 1.0, g)
                cnf.Backend <- Compiled.choice (fused)
                use _ = torch.no_grad()
                use x = cnf.Decode(z, null)
                let decodedFused = (Compiled.ran cnf)
                use logp = cnf.LogProbability(z)
                Tensors.toArray x, Tensors.toArray logp, decodedFused && (Compiled.ran cnf), cnf.LastStatistics
            let xF, lF, ranF, sF = run true
            let xG, lG, ranG, sG = run false
            Expect.isTrue ranF "fused"
            Expect.isFalse ranG "generic"
            Expect.isLessThan (Tensors.relativeError xF xG) 1e-12 "decoded"
            Expect.isLessThan (Tensors.relativeError lF lG) 1e-12 "log p"
            Expect.equal (Compiled.counts sF) (Compiled.counts sG) "statistics"
        }
    ]
