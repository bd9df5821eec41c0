/// Per-sample spans (Solve/Spans) and the adaptive-depth model built on them.
module NeuralOde.Tests.Models.AdaptiveDepthTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private f64 = torch.float64
let private tight = Sensitivities.tight

[<Tests>]
let tests =
    testList "Models/adaptive depth" [
        test "per-sample spans: each sample of dx/dt = t·x ends at x0·exp((t1² − t0²)/2) of its own span, in one solve" {
            let t0v, t1v, x0v = [| 0.0; 0.5; -1.0; 2.0; 1.0 |], [| 1.0; 0.5; 1.0; 1.0; 1.7 |], [| 1.0; 2.0; -1.0; 0.5; 3.0 |]
            use t0 = Tensors.f64 t0v
            use t1 = Tensors.f64 t1v
            use x0 = (Tensors.f64 x0v).reshape(5L, 1L)
            let f: Spans.SampleVectorField = fun t x -> x * t.reshape(-1L, 1L)
            use solution = Spans.solve f x0 t0 t1 [| 0.0; 0.5; 1.0 |] [||] Sensitivity.Autograd Solvers.dopri5 tight
            let final = Tensors.toArray solution.Final
            for i in 0 .. 4 do
                let exact = x0v[i] * exp ((t1v[i] * t1v[i] - t0v[i] * t0v[i]) / 2.0)
                Expect.floatClose Accuracy.high final[i] exact $"sample {i}"
            use half = solution.States[1L]
            let mid = Tensors.toArray half
            let tm = (t0v[3] + t1v[3]) / 2.0
            Expect.floatClose Accuracy.high mid[3] (x0v[3] * exp ((tm * tm - t0v[3] * t0v[3]) / 2.0)) "halfway along a backward span"
            Expect.equal final[1] x0v[1] "an empty span leaves the sample where it started"
        }
        test "per-sample spans: dL/dt1 = λ(t1)ᵀ f(t1, x(t1)) and dL/dt0 = −λ(t0)ᵀ f(t0, x0), by autograd and every adjoint" {
            // dx/dt = −x·(1 + t): x(t1) = x0 exp(−(t1 − t0) − (t1² − t0²)/2); L = Σ x(t1)².
            let t0v, t1v, x0v = [| 0.0; 0.3 |], [| 1.0; 2.0 |], [| 1.5; -0.7 |]
            for name, sensitivity in Sensitivities.all do
                use t0 = (Tensors.f64 t0v).requires_grad_(true)
                use t1 = (Tensors.f64 t1v).requires_grad_(true)
                use x0 = (Tensors.f64 x0v).reshape(2L, 1L).requires_grad_(true)
                let f: Spans.SampleVectorField = fun t x -> (use s = t.reshape(-1L, 1L) + 1.0 in x.neg() * s)
                use solution = Spans.solve f x0 t0 t1 [| 0.0; 1.0 |] [||] sensitivity Solvers.dopri5 tight
                use loss = solution.Final.square().sum()
                Ode.backward loss
                let g1, g0, gx = Tensors.toArray t1.grad, Tensors.toArray t0.grad, Tensors.toArray x0.grad
                for i in 0 .. 1 do
                    let a, b, x = t0v[i], t1v[i], x0v[i]
                    let xT = x * exp (-(b - a) - (b * b - a * a) / 2.0)
                    let lambdaT = 2.0 * xT
                    Expect.floatClose Accuracy.medium g1[i] (lambdaT * (-xT * (1.0 + b))) $"{name}: dL/dt1[{i}]"
                    let lambda0 = lambdaT * xT / x
                    Expect.floatClose Accuracy.medium gx[i] lambda0 $"{name}: dL/dx0[{i}]"
                    Expect.floatClose Accuracy.medium g0[i] (-(lambda0 * (-x * (1.0 + a)))) $"{name}: dL/dt0[{i}]"
        }
        test "per-sample spans check their arguments" {
            use x0 = torch.zeros([| 3L; 1L |], dtype = f64)
            use good = torch.zeros([| 3L |], dtype = f64)
            use short = torch.zeros([| 2L |], dtype = f64)
            use bad = Tensors.f64 [| 0.0; nan; 1.0 |]
            let f: Spans.SampleVectorField = fun _ x -> x
            let e1 = Raises.raises<System.ArgumentException> (fun () -> Spans.problem f x0 good short [| 0.0; 1.0 |] [||] |> ignore)
            Expect.equal e1.ParamName "t1" "names t1"
            let e2 = Raises.raises<System.ArgumentException> (fun () -> Spans.problem f x0 bad good [| 0.0; 1.0 |] [||] |> ignore)
            Expect.stringContains e2.Message "t0[1] is NaN" "names the element"
            let e3 = Raises.raises<System.ArgumentException> (fun () -> Spans.problem f x0 good good [| 0.0; 0.5 |] [||] |> ignore)
            Expect.equal e3.ParamName "fractions" "fractions must end at 1"
        }
        test "adaptive depth: the output is z(S(x)) of each sample's own depth, and ω gets the end-time gradient" {
            // f(z) = −z, so z(S) = x e^{−S}; the depth module g(x) = w x + b, S = softplus(g) + 0.1.
            let negField = { new Module<torch.Tensor, torch.Tensor>("neg") with member _.forward(z) = z.neg() }
            for name, sensitivity in Sensitivities.all do
                // A model disposes its modules: each gets its own (equal) depth module.
                let depth = Linear(1L, 1L, dtype = f64)
                Tensors.initialize 21 0.7 depth
                use model = new AdaptiveDepthModel(negField, depth, Solvers.dopri5, tight, sensitivity, 0.1)
                use x = (Tensors.f64 [| 0.5; -1.0; 2.0 |]).reshape(3L, 1L)
                use z = model.forward x
                use s = (use _ = torch.no_grad() in model.Depths x)
                let xs, ss, zs = Tensors.toArray x, Tensors.toArray s, Tensors.toArray z
                for i in 0 .. 2 do
                    Expect.floatClose Accuracy.high zs[i] (xs[i] * exp (-ss[i])) $"{name}: z(S) of sample {i}"
                use loss = z.sum()
                Ode.backward loss
                // dL/dw = Σ_i dL/dS_i · σ(g_i) · x_i with dL/dS_i = f(z(S_i)) = −z_i(S_i).
                let w, b = depth.weight.ToDouble(), depth.bias.ToDouble()
                let sigmoid v = 1.0 / (1.0 + exp (-v))
                let expectedW = [ for i in 0 .. 2 -> -zs[i] * sigmoid (w * xs[i] + b) * xs[i] ] |> List.sum
                Expect.floatClose Accuracy.medium (depth.weight.grad.ToDouble()) expectedW $"{name}: dL/dw"
        }
        test "adaptive depth refuses a field whose depth dependence cannot be per sample" {
            use gal = new GalLinear(1L, 1L, Basis.fourier 1 1.0, f64)
            use depth = Linear(1L, 1L, dtype = f64)
            let e = Raises.raises<System.ArgumentException> (fun () -> new AdaptiveDepthModel(gal, depth, Solvers.rk4, StepControl.steps 4) |> ignore)
            Expect.stringContains e.Message "DepthCat" "says what to use"
        }
    ]
