module NeuralOde.Tests.FieldBackends.DiscreteAdjointTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.FieldBackends.Mlp
open NeuralOde.Tests.Support
open NeuralOde.Tests.FieldBackends.CompiledBlocks

let private compare (dtype: torch.ScalarType) (tolerance: float) (solver: ButcherTableau) (control: StepControl) (times: float[]) (act: string) (shape: int64[]) =
    use field = mlp dtype (int shape[shape.Length - 1]) 16 act 7
    use block = new NeuralOdeModel(field, solver, control, times)
    use g = torch.Generator(11UL)
    use x = torch.randn(shape, dtype = dtype, generator = g)
    let fused = outputAndGradients block x true
    let generic = outputAndGradients block x false
    agree tolerance $"{dtype} {solver.Name} {control} {act} {times.[0]}→{times.[times.Length - 1]} shape %A{shape}" fused generic

[<Tests>]
let tests =
    testList "FieldBackends/DiscreteAdjoint" [
        test "float64: the output and every gradient equal the generic solver's, for every tableau" {
            for solver in Solvers.all do
                compare torch.float64 1e-12 solver (StepControl.steps 6) [| 0.0; 1.0 |] "tanh" [| 32L; 2L |]
        }
        test "float64: every activation, shortened last steps, backward time, several output times, N-D and 1-D states" {
            for act in [ "tanh"; "sigmoid"; "relu"; "softplus" ] do
                compare torch.float64 1e-12 Solvers.rk4 (StepControl.steps 5) [| 0.0; 1.0 |] act [| 16L; 3L |]
            compare torch.float64 1e-12 Solvers.rk4 (StepControl.fixedStep 0.07) [| 0.0; 1.0 |] "tanh" [| 16L; 2L |]
            compare torch.float64 1e-12 Solvers.dopri5 (StepControl.fixedStep 0.3) [| 2.0; 0.5 |] "tanh" [| 16L; 2L |]
            compare torch.float64 1e-12 Solvers.rk4 (StepControl.steps 4) [| 0.0; 0.3; 1.0 |] "tanh" [| 16L; 2L |]
            compare torch.float64 1e-12 Solvers.heun (StepControl.steps 4) [| 0.0; 1.0 |] "tanh" [| 4L; 5L; 2L |]
            compare torch.float64 1e-12 Solvers.rk4 (StepControl.steps 4) [| 0.0; 1.0 |] "tanh" [| 2L |]
        }
        test "float32 (SIMD kernels): the output and gradients agree with the generic solver's to float32 rounding" {
            // Widths 2 (the thin kernels), 16 and 37 (libtorch's product, a width that is no multiple of the SIMD width).
            for solver, act in [ Solvers.rk4, "tanh"; Solvers.dopri5, "sigmoid"; Solvers.midpoint, "relu"; Solvers.rk4, "softplus" ] do
                compare torch.float32 2e-5 solver (StepControl.steps 10) [| 0.0; 1.0 |] act [| 64L; 2L |]
            use field = mlp torch.float32 37 37 "tanh" 3
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 5, [| 0.0; 1.0 |])
            use x = (input [| 9L; 37L |] torch.float32 101)
            agree 2e-5 "width 37" (outputAndGradients block x true) (outputAndGradients block x false)
        }
        test "a Linear without bias, and one with a wider hidden layer than the input (thin products both ways)" {
            for dtype, tolerance in [ torch.float64, 1e-12; torch.float32, 2e-5 ] do
                use field = Sequential(Linear(3L, 40L, hasBias = false), Tanh(), Linear(40L, 3L, hasBias = false))
                field.``to``(dtype) |> ignore
                Tensors.initialize 5 0.4 field
                use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 8, [| 0.0; 1.0 |])
                use x = (input [| 50L; 3L |] dtype 102)
                agree tolerance $"{dtype} no bias" (outputAndGradients block x true) (outputAndGradients block x false)
        }
        test "Galerkin layers (weights α ψ(s)) first or in the middle: output and gradients equal the generic solver's" {
            for dtype, tolerance in [ torch.float64, 1e-12; torch.float32, 2e-5 ] do
                for basis in [ Basis.fourier 3 1.0; Basis.chebyshev 4 1.0 ] do
                    for solver, control in [ Solvers.rk4, StepControl.steps 10; Solvers.dopri5, StepControl.fixedStep 0.15 ] do
                        let first = new GalLinear(2L, 16L, basis, dtype)
                        let middle = new GalLinear(16L, 16L, basis, dtype)
                        let field = Sequential(first :> Layer, Tanh(), middle, Tanh(), Linear(16L, 2L))
                        field.``to``(dtype) |> ignore
                        Tensors.initialize 13 0.3 field
                        use block = new NeuralOdeModel(field, solver, control, [| 0.0; 1.0 |])
                        use x = (input [| 40L; 2L |] dtype 103)
                        agree tolerance $"{dtype} {basis.Name} {solver.Name}" (outputAndGradients block x true) (outputAndGradients block x false)
        }
        test "adjoints evaluate the field and its products by the fused kernels: the generic solver's gradients and evaluations" {
            for dtype, tolerance in [ torch.float64, 1e-9; torch.float32, 1e-3 ] do
                for sensitivity in [ Sensitivity.adjoint; Sensitivity.interpolatedAdjoint ] do
                    for galerkin in [ false; true ] do
                        let field =
                            if galerkin then
                                let g = new GalLinear(2L, 16L, Basis.fourier 2 1.0, dtype)
                                Sequential(g :> Layer, Tanh(), Linear(16L, 2L))
                            else mlp dtype 2 16 "tanh" 21
                        field.``to``(dtype) |> ignore
                        Tensors.initialize 21 0.4 field
                        let block = new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive 1e-7 1e-7, sensitivity, [| 0.0; 1.0 |])
                        use x = (input [| 30L; 2L |] dtype 104)
                        let run fused =
                            let y, g, s = outputAndGradients block x fused
                            y, g, s, block.LastBackwardStatistics.FunctionEvaluations
                        let yF, gF, sF, bF = run true
                        let yG, gG, sG, bG = run false
                        if dtype = torch.float64 then
                            agree tolerance $"{dtype} {sensitivity} galerkin {galerkin}" (yF, gF, sF) (yG, gG, sG)
                            Expect.equal bF bG "the backward solve's evaluations"
                        else
                            // float32: the two fields round differently (the fitted tanh), and an adaptive controller
                            // near its threshold may then take another step: same accuracy, counts within 20%.
                            Expect.isLessThan (Tensors.relativeError yF yG) 1e-4 "float32 output"
                            List.iter2 (fun a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-3 "float32 gradient") gF gG
                            Expect.isLessThan (abs (float (bF - bG)) / float bG) 0.2 "backward evaluations within 20%"
        }
        testSequenced <| test "split solves (rows in chunks on parallel threads) give the single solve's output, gradients and errors" {
            // Three threads for the block's chunks (rows ≥ 2 × 256 make two or three chunks); libtorch's own count is
            // restored after (sequenced: it is process-wide).
            let savedThreads = torch.get_num_threads ()
            torch.set_num_threads 3
            try
                let compareThreads (dtype: torch.ScalarType) tolerance solver control act (shape: int64[]) =
                    use field = mlp dtype (int shape[shape.Length - 1]) 16 act 7
                    use block = new NeuralOdeModel(field, solver, control, [| 0.0; 1.0 |])
                    block.Threads <- Some 3
                    use x = input shape dtype 11
                    agree tolerance $"{dtype} {act} %A{shape}" (outputAndGradients block x true) (outputAndGradients block x false)
                compareThreads torch.float64 1e-12 Solvers.rk4 (StepControl.steps 6) "tanh" [| 800L; 2L |]
                compareThreads torch.float64 1e-12 Solvers.dopri5 (StepControl.steps 4) "softplus" [| 10L; 60L; 2L |]
                // float32: 777 rows summed into each parameter gradient, in other orders.
                compareThreads torch.float32 5e-5 Solvers.rk4 (StepControl.steps 6) "tanh" [| 777L; 2L |]
                use field = mlp torch.float64 2 16 "tanh" 7
                use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 6, [| 0.0; 1.0 |])
                block.Threads <- Some 3
                use x = (input [| 800L; 2L |] torch.float64 105)
                // Frozen parameters and x alone requiring grad; then inference.
                for p in block.parameters() do p.requires_grad_(false) |> ignore
                use xg = x.clone().requires_grad_(true)
                use y = block.forward xg
                do (use s = y.square().sum() in s.backward())
                block.Backend <- Compiled.choice (false)
                use xr = x.clone().requires_grad_(true)
                use yr = block.forward xr
                do (use s = yr.square().sum() in s.backward())
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray xg.grad) (Tensors.toArray xr.grad)) 1e-12 "x's gradient"
                Expect.equal (torch.get_num_threads ()) 3 "the thread count is restored after split solves"
                // Inference twice (the workspace made and reused under no_grad: the chunks' threads must not record).
                block.Backend <- Compiled.choice (true)
                for _ in 1 .. 2 do
                    use _ = torch.no_grad()
                    use yi = block.forward x
                    Expect.isFalse yi.requires_grad "no graph under no_grad"
                    Expect.isTrue (Compiled.ran block) "split inference ran compiled"
                // A blow-up (a ReLU field with large weights): the module's error at its time, the earliest chunk's.
                use relu = mlp torch.float64 2 16 "relu" 6
                do (use _ = torch.no_grad() in for p in relu.parameters() do p.mul_(Scalar.op_Implicit 40.0) |> ignore)
                use wildBlock = new NeuralOdeModel(relu, Solvers.rk4, StepControl.steps 200, [| 0.0; 20.0 |])
                wildBlock.Threads <- Some 3
                use wild = torch.linspace(0.0, 1.0, 1600L, dtype = torch.float64).reshape(800L, 2L)
                let failure fused =
                    wildBlock.Backend <- Compiled.choice (fused)
                    Raises.raises<OdeSolveException> (fun () -> (use y = wildBlock.forward wild in ()))
                let f, g = failure true, failure false
                Expect.equal (f.Failure, f.Time) (g.Failure, g.Time) "the same failure at the same time"
            finally
                torch.set_num_threads savedThreads
        }
        test "float64 gradients equal central finite differences of the fused solve" {
            use field = mlp torch.float64 2 8 "tanh" 2
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
            use x = torch.tensor([| 0.3; -0.8; 1.1; 0.4 |], dtype = torch.float64).reshape(2L, 2L)
            let loss () =
                use _ = torch.no_grad()
                use y = block.forward x
                use s = (y * y).sum()
                s.ToDouble()
            let _, grads, _ = outputAndGradients block x true
            let eps = 1e-6
            for i, p in Seq.indexed (block.parameters()) do
                use flat = p.detach().view(-1L)
                for j in [ 0L; flat.numel() - 1L ] do
                    let v = flat[j].ToDouble()
                    flat[j] <- torch.tensor(v + eps, dtype = torch.float64)
                    let up = loss ()
                    flat[j] <- torch.tensor(v - eps, dtype = torch.float64)
                    let down = loss ()
                    flat[j] <- torch.tensor(v, dtype = torch.float64)
                    let fd = (up - down) / (2.0 * eps)
                    // outputAndGradients weights the loss by w; redo its gradient for the plain Σ y² here.
                    ignore grads
                    block.Backend <- Compiled.choice (true)
                    p.grad <- null
                    do (use y = block.forward x in use s = (y * y).sum() in s.backward())
                    let analytic = Tensors.toArray p.grad
                    Expect.floatClose { absolute = 1e-7; relative = 1e-6 } analytic[int j] fd $"parameter {i}, entry {j}"
        }
        test "the float32 tanh: relative error below 4e-7 on [−12, 12], ±1 beyond, odd, NaN kept" {
            let n = 1 <<< 20
            let xs = Array.init n (fun i -> -12.0f + 24.0f * float32 i / float32 (n - 1))
            let ys = Array.copy xs
            Kernels.tanhInPlace (Span<float32>(ys))
            let worst = Array.map2 (fun (x: float32) (y: float32) -> let t = tanh (float x) in if t = 0.0 then abs (float y) else abs (float y - t) / abs t) xs ys |> Array.max
            Expect.isLessThan worst 4e-7 "relative error"
            Expect.equal (Kernels.tanhScalar 30.0f) 1.0f "saturates at 1"
            Expect.equal (Kernels.tanhScalar -30.0f) -1.0f "and at −1"
            Expect.equal (Kernels.tanhScalar -0.3f) (-(Kernels.tanhScalar 0.3f)) "odd"
            let special = [| nanf; infinityf; -infinityf; 0.0f; 1e-30f; 0.1f; 0.2f; 0.3f; 0.4f; 0.5f; 0.6f; 0.7f; 0.8f; 0.9f; 1.0f; 2.0f; 3.0f; 4.0f; 5.0f; 6.0f |]
            Kernels.tanhInPlace (Span<float32>(special))
            Expect.isTrue (Single.IsNaN special[0]) "NaN stays NaN (SIMD)"
            Expect.equal (special[1], special[2], special[3]) (1.0f, -1.0f, 0.0f) "±Inf → ±1, 0 → 0"
            Expect.isTrue (Single.IsNaN(Kernels.tanhScalar nanf)) "NaN stays NaN (scalar)"
        }
        test "the float32 softplus and its derivative (SIMD and scalar): relative error below 1e-6 against float64 on [−40, 40]" {
            let n = 1 <<< 18
            let xs = Array.init n (fun i -> -40.0f + 80.0f * float32 i / float32 (n - 1))
            // The float64 reference: log1p by its series where 1 + u rounds away u's digits.
            let log1p (u: float) = if u < 1e-5 then u * (1.0 - u * (0.5 - u / 3.0)) else log (1.0 + u)
            let softplus (x: float) = max x 0.0 + log1p (exp (-(abs x)))
            let relative (got: float32) (want: float) = abs (float got - want) / abs want
            let byVector (f: Numerics.Vector<float32> -> Numerics.Vector<float32>) (x: float32) = (f (Numerics.Vector<float32>(x)))[0]
            let worst = xs |> Array.map (fun x -> max (relative (Kernels.softplusScalar x) (softplus (float x))) (relative (byVector Kernels.vsoftplus x) (softplus (float x)))) |> Array.max
            Expect.isLessThan worst 1e-6 "softplus: relative error"
            // The derivative from the output y = softplus(x) (the logistic of x): 1 − e^(−y) at the float32 y.
            let worstDerivative =
                xs |> Array.map (fun x ->
                    let y = float32 (softplus (float x))
                    let y64 = float y
                    let want = if y64 < 1e-5 then y64 * (1.0 - y64 * (0.5 - y64 / 6.0)) else 1.0 - Math.Exp(-y64)
                    max (relative (Kernels.softplusDerivativeScalar y) want) (relative (byVector Kernels.vsoftplusDerivative y) want)) |> Array.max
            Expect.isLessThan worstDerivative 1e-6 "softplus′ from the output: relative error"
        }
        test "only standard MLP fields are recognised; everything else runs the generic solver" {
            let recognised (m: torch.nn.Module) = (match MlpLayers.recognise m with Ok _ -> true | Error _ -> false)
            use standard = Sequential(Linear(2L, 8L), Tanh(), Identity(), Linear(8L, 2L))
            Expect.isTrue (recognised standard) "Linear, tanh, Identity, Linear"
            use depthCat = Sequential(new DepthCat() :> Layer, Linear(3L, 8L), Tanh(), Linear(8L, 2L))
            Expect.isFalse (recognised depthCat) "a depth-aware layer"
            use galerkin = Sequential(new GalLinear(2L, 8L, Basis.fourier 2 1.0) :> Layer, Tanh(), Linear(8L, 2L))
            Expect.isTrue (recognised galerkin) "a Galerkin layer (its weights are α ψ(s))"
            use stacked = Sequential(new StackedLinear(2L, 8L, [| 0.0; 0.5; 1.0 |], torch.float32) :> Layer, Tanh(), Linear(8L, 2L))
            Expect.isFalse (recognised stacked) "a stacked (piecewise-constant) layer"
            use shifted = Sequential(Linear(2L, 8L), Softplus(beta = 2.0), Linear(8L, 2L))
            Expect.isFalse (recognised shifted) "softplus with β ≠ 1"
            use twoActivations = Sequential(Linear(2L, 8L), Tanh(), Tanh(), Linear(8L, 2L))
            Expect.isFalse (recognised twoActivations) "two activations in a row"
            use mismatch = Sequential(Linear(2L, 8L), Tanh(), Linear(8L, 3L))
            Expect.isFalse (recognised mismatch) "output width ≠ input width"
            use hooked = Sequential(Linear(2L, 8L), Tanh(), Linear(8L, 2L))
            let inner = hooked.children() |> Seq.head :?> TorchSharp.Modules.Linear
            let remover = inner.register_forward_hook(Func<Layer, Tensor, Tensor, Tensor>(fun _ _ y -> y))
            Expect.isFalse (recognised hooked) "a layer with a forward hook (it would be skipped)"
            remover.remove()
            Expect.isTrue (recognised hooked) "the hook removed"
        }
        test "blocks that need the generic solver get it: adaptive steps with autograd, running losses, Trajectory, mismatched dtypes" {
            use field = mlp torch.float64 2 8 "tanh" 1
            use x = (input [| 4L; 2L |] torch.float64 106)
            let runs (block: NeuralOdeModel) =
                use y = block.forward x
                (Compiled.ran block)
            let runs32 (block: NeuralOdeModel) (x32: Tensor) =
                use y = block.forward x32
                (Compiled.ran block)
            let adaptive = new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive 1e-6 1e-6, [| 0.0; 1.0 |])
            Expect.isFalse (runs adaptive) "adaptive"
            let adjoint = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, Sensitivity.adjoint, [| 0.0; 1.0 |])
            Expect.isTrue (runs adjoint) "an adjoint: the generic solver with the fused field"
            let withLoss = new NeuralOdeModel("l", field, Solvers.rk4, StepControl.steps 4, Sensitivity.Autograd, [| 0.0; 1.0 |], Some(fun _ z -> (z * z).sum()))
            Expect.isFalse (runs withLoss) "running loss"
            let b = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
            Expect.isTrue (runs b) "the standard case"
            // Trajectory solves the same problem at every output time: compiled too (the discrete adjoint reads each
            // output where the loop read it).
            let trajectory = b.Trajectory(x)
            trajectory.States.Dispose()
            Expect.isTrue (Compiled.ran b) "Trajectory"
            use x32 = x.to_type(torch.float32)
            // Refused before any solve, naming x and both dtypes (the generic solver used to report it mid-solve).
            let e = Raises.raises<System.ArgumentException> (fun () -> runs32 b x32 |> ignore)
            Expect.equal e.ParamName "x" "names x"
        }
        test "no_grad and inputs that need no gradient solve without saving activations, and equal the graded solve" {
            use field = mlp torch.float64 2 8 "tanh" 4
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 7, [| 0.0; 1.0 |])
            use x = (input [| 10L; 2L |] torch.float64 107)
            let solve () =
                use y = block.forward x
                y.requires_grad, Tensors.toArray y
            let gradedNeedsGrad, graded = solve ()
            Expect.isTrue gradedNeedsGrad "a graph"
            let inferenceNeedsGrad, inference = (use _ = torch.no_grad() in solve ())
            Expect.isFalse inferenceNeedsGrad "no graph under no_grad"
            // The same arithmetic, up to MKL's alignment-dependent rounding of the products.
            Expect.isLessThan (Tensors.relativeError inference graded) 1e-14 "the same result"
            for p in block.parameters() do p.requires_grad_(false) |> ignore
            let frozen = block.forward x
            Expect.isFalse frozen.requires_grad "nothing requires grad"
            frozen.Dispose()
            use xg = x.clone().requires_grad_(true)
            use y = block.forward xg
            Expect.isTrue (Compiled.ran block) "fused"
            do (use s = y.sum() in s.backward())
            Expect.isNotNull xg.grad "x's gradient with frozen parameters"
            for p in block.parameters() do Expect.isNull p.grad "frozen parameters get none"
        }
        test "NaN or Inf raise the generic solver's errors: x0 names x0, a blow-up names the step's time" {
            use field = mlp torch.float64 2 8 "relu" 6
            do (use _ = torch.no_grad() in for p in field.parameters() do p.mul_(Scalar.op_Implicit 40.0) |> ignore)
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 200, [| 0.0; 20.0 |])
            use x = torch.ones([| 3L; 2L |], dtype = torch.float64)
            let failure fused =
                block.Backend <- Compiled.choice (fused)
                Raises.raises<OdeSolveException> (fun () -> (use y = block.forward x in ()))
            let f, g = failure true, failure false
            Expect.equal f.Failure OdeFailure.NonFiniteValue "a non-finite state"
            Expect.equal (f.Failure, f.Time) (g.Failure, g.Time) "the same failure at the same time as the generic solver"
            use bad = torch.tensor([| nan; 1.0 |], dtype = torch.float64)
            block.Backend <- Compiled.choice (true)
            let e = Raises.raises<ArgumentException> (fun () -> (use y = block.forward bad in ()))
            Expect.equal e.ParamName "x0" "names x0"
        }
        test "retain_graph: a second backward pass gives the same gradients; after another solve it is refused, not wrong" {
            use field = mlp torch.float64 2 8 "tanh" 8
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 5, [| 0.0; 1.0 |])
            use x = (input [| 6L; 2L |] torch.float64 108).requires_grad_(true)
            use y = block.forward x
            use loss = (y * y).sum()
            loss.backward(retain_graph = true)
            let first = Tensors.toArray x.grad
            x.grad <- null
            loss.backward(retain_graph = true)
            Expect.sequenceEqual (Tensors.toArray x.grad) first "the second pass repeats the first"
            use y2 = block.forward x
            let e = Raises.raises<InvalidOperationException> (fun () -> Ode.backward loss)
            Expect.stringContains e.Message "reused by a later solve" "says why"
        }
        test "higher-order gradients (create_graph) through the fused solve equal the generic solver's" {
            use field = mlp torch.float64 2 8 "tanh" 9
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 5, [| 0.0; 1.0 |])
            use x = (input [| 3L; 2L |] torch.float64 109).requires_grad_(true)
            // A gradient penalty: d/dθ ‖∂L/∂x‖², L = Σ y².
            let penaltyGradient fused =
                block.Backend <- Compiled.choice (fused)
                for p in block.parameters() do p.grad <- null
                use y = block.forward x
                Expect.equal (Compiled.ran block) fused "the solver asked for"
                use loss = (y * y).sum()
                use gx = torch.autograd.grad([| loss |], [| x |], retain_graph = true, create_graph = true)[0]
                Expect.isTrue gx.requires_grad "a differentiable gradient"
                use penalty = gx.square().sum()
                penalty.backward()
                [ for p in block.parameters() -> Tensors.toArray p.grad ]
            let fused, generic = penaltyGradient true, penaltyGradient false
            List.iter2 (fun a b -> Expect.isLessThan (Tensors.relativeError a b) 1e-12 "second-order gradient") fused generic
        }
        test "a cancelled solve stops with OperationCanceledException naming the time, as the generic solver does" {
            use field = mlp torch.float64 2 8 "tanh" 10
            use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 50, [| 0.0; 1.0 |])
            use x = (input [| 3L; 2L |] torch.float64 110)
            use cts = new Threading.CancellationTokenSource()
            cts.Cancel()
            let e = Raises.raises<OperationCanceledException> (fun () -> Cancellation.within cts.Token (fun () -> (use y = block.forward x in ())))
            Expect.stringContains e.Message "t = 0" "at the first step"
        }
        test "many solves of two batch sizes reuse their workspaces: the result does not drift and training matches the generic solver" {
            for dtype, tolerance in [ torch.float64, 1e-10; torch.float32, 1e-4 ] do
                let train fused =
                    use field = mlp dtype 2 16 "tanh" 12
                    use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
                    block.Backend <- Compiled.choice (fused)
                    use opt = torch.optim.Adam(block.parameters(), 1e-2)
                    use g = torch.Generator(5UL)
                    let losses = ResizeArray()
                    for i in 1 .. 30 do
                        use _ = torch.NewDisposeScope()
                        let x = torch.randn([| (if i % 3 = 0 then 17L else 64L); 2L |], dtype = dtype, generator = g)
                        opt.zero_grad()
                        let loss = (block.forward x - x.flip(1L)).square().mean()
                        loss.backward()
                        opt.step() |> ignore
                        losses.Add(loss.ToDouble())
                    losses.ToArray()
                let f, gen = train true, train false
                Expect.isLessThan (Tensors.relativeError f gen) tolerance $"{dtype}: 30 Adam steps, two batch sizes"
        }
    ]
