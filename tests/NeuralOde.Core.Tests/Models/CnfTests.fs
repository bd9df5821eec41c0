module NeuralOde.Tests.Models.CnfTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private f64 = torch.float64

/// A tanh MLP d → h → d in float64 with parameters drawn from `seed`.
let mlp (seed: int) (scale: float) (d: int64) (h: int64) =
    let m = Sequential(Linear(d, h, dtype = f64), Tanh(), Linear(h, d, dtype = f64))
    Tensors.initialize seed scale m
    m

/// e^A for a small matrix by its Taylor series (40 terms: exact to rounding for ‖A‖ ≈ 1).
let private expm (a: float[,]) =
    let n = Array2D.length1 a
    let mul (x: float[,]) (y: float[,]) = Array2D.init n n (fun i j -> Seq.sum (seq { for k in 0 .. n - 1 -> x[i, k] * y[k, j] }))
    let mutable term = Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0)
    let mutable sum = Array2D.copy term
    for k in 1 .. 40 do
        term <- mul term a |> Array2D.map (fun v -> v / float k)
        sum <- Array2D.init n n (fun i j -> sum[i, j] + term[i, j])
    sum

/// Mean and standard error of a sample.
let private meanAndError (xs: float[]) =
    let m = Array.average xs
    let var = (xs |> Array.sumBy (fun x -> (x - m) * (x - m))) / float (xs.Length - 1)
    m, sqrt (var / float xs.Length)

/// n points of a mixture of Gaussians with standard deviation 0.4 at `centres` (equal weights), float64.
let mixture (centres: float[][]) (n: int) (g: torch.Generator) =
    use scope = torch.NewDisposeScope()
    let c = Tensors.f64m centres
    let index = torch.randint(0L, int64 centres.Length, [| int64 n |], dtype = torch.int64, generator = g)
    let noise = torch.randn([| int64 n; 2L |], dtype = f64, generator = g)
    (c.index_select(0L, index) + noise * 0.4).MoveToOuterDisposeScope()

let private corners = [| [| 2.0; 2.0 |]; [| -2.0; 2.0 |]; [| -2.0; -2.0 |]; [| 2.0; -2.0 |] |]

let private tight = StepControl.adaptive 1e-10 1e-12

/// The linear field f(z) = A z (as a bias-free Linear with weight A) for a non-diagonal A.
let private linearField (a: float[,]) =
    let m = Linear(2L, 2L, hasBias = false, dtype = f64)
    use _ = torch.no_grad()
    use w = Tensors.f64m [| for i in 0 .. 1 -> [| for j in 0 .. 1 -> a[i, j] |] |]
    m.weight.copy_(w) |> ignore
    m

let private a = array2D [ [ 0.3; -0.7 ]; [ 0.5; -0.2 ] ]

/// log N(e^A x; 0, I) + tr A per row of x.
let private linearLogProbability (xs: float[][]) =
    let e = expm a
    [| for x in xs ->
        let z = [| for i in 0 .. 1 -> e[i, 0] * x[0] + e[i, 1] * x[1] |]
        -0.5 * (z[0] * z[0] + z[1] * z[1]) - log (2.0 * Math.PI) + (a[0, 0] + a[1, 1]) |]

[<Tests>]
let traceTests =
    testList "Models/Cnf/trace" [
        for noise in [ Rademacher; Gaussian ] do
            test $"Hutchinson ({noise}) is unbiased: the mean of 40000 draws lies within 4 standard errors of the exact trace" {
                use scope = torch.NewDisposeScope()
                use field = mlp 11 0.8 3L 16L
                use _ = torch.enable_grad()
                let z = Tensors.f64m [| [| 0.3; -1.1; 0.7 |] |]
                let zs = z.expand([| 40000L; 3L |]).contiguous().requires_grad_(true)
                // f(z) = MLP(z) + 1.5 z: a trace well away from zero, so a biased estimate cannot pass by its noise.
                let fz = field.forward zs + zs * 1.5
                let traces = Trace.exact fz zs false
                let exact = traces[0].ToDouble()
                let epsilon = Trace.noise noise 5UL zs.shape f64 zs.device
                let draws = Tensors.toArray (Trace.hutchinson fz zs epsilon false)
                let mean, error = meanAndError draws
                Expect.isGreaterThan error 1e-3 "the draws vary"
                Expect.isLessThan (4.0 * error) (0.05 * abs exact) $"the test has power: 4 standard errors ({4.0 * error:F4}) are under 5 percent of the trace {exact:F4}"
                Expect.isLessThan (abs (mean - exact)) (4.0 * error) $"mean {mean:F5} ± {error:F5} against the exact trace {exact:F5}"
            }
        test "the exact trace of a linear field is tr A in every row" {
            use scope = torch.NewDisposeScope()
            use field = linearField a
            use _ = torch.enable_grad()
            let z = torch.randn([| 5L; 2L |], dtype = f64).requires_grad_(true)
            let fz = field.forward z
            let tr = Trace.exact fz z false
            for v in Tensors.toArray tr do Expect.floatClose Accuracy.high v 0.1 "tr A = 0.3 − 0.2"
        }
        test "Rademacher probes are ±1 and Gaussian ones are not; the same seed gives the same probes" {
            use scope = torch.NewDisposeScope()
            let r = Tensors.toArray (Trace.noise Rademacher 3UL [| 100L; 2L |] f64 torch.CPU)
            Expect.allEqual (r |> Array.map abs) 1.0 "|ε| = 1"
            Expect.isTrue (Array.contains 1.0 r && Array.contains -1.0 r) "both signs"
            let g1 = Tensors.toArray (Trace.noise Gaussian 3UL [| 100L; 2L |] f64 torch.CPU)
            let g2 = Tensors.toArray (Trace.noise Gaussian 3UL [| 100L; 2L |] f64 torch.CPU)
            Expect.sequenceEqual g1 g2 "reproducible from the seed"
            Expect.isTrue (g1 |> Array.exists (fun v -> abs v <> 1.0)) "Gaussian"
        }
    ]

[<Tests>]
let flowTests =
    testList "Models/Cnf/change of variables" [
        test "a linear field A z gives log N(e^A x) + tr A to 1e-6 (exact trace, dopri5)" {
            use scope = torch.NewDisposeScope()
            use field = linearField a
            use cnf = new Cnf(field, 2, Exact, Solvers.dopri5, tight)
            let xs = [| [| 0.5; -1.0 |]; [| 2.0; 0.3 |]; [| -1.5; -0.4 |] |]
            let logp = Tensors.toArray (cnf.LogProbability(Tensors.f64m xs))
            let expected = linearLogProbability xs
            for i in 0 .. xs.Length - 1 do
                Expect.floatClose { absolute = 1e-6; relative = 0.0 } logp[i] expected[i] $"sample {i}"
            Expect.isGreaterThan cnf.LastStatistics.FunctionEvaluations 0 "statistics of the solve"
        }
        test "Hutchinson (Rademacher) on a non-diagonal linear field gives log N(e^A x) + tr A in expectation over 100 solves" {
            use scope = torch.NewDisposeScope()
            use field = linearField a
            use g = new torch.Generator(17UL)
            use cnf = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.dopri5, StepControl.adaptive 1e-8 1e-10, Sensitivity.Autograd, 0.0, 1.0, g)
            let xs = Array.replicate 20 [| 0.5; -1.0 |]
            let x = Tensors.f64m xs
            let expected = (linearLogProbability xs)[0]
            let draws = [| for _ in 1 .. 100 do
                             use inner = torch.NewDisposeScope()
                             yield! Tensors.toArray (cnf.LogProbability x) |]
            let mean, error = meanAndError draws
            // εᵀAε = tr A ± (A12 + A21): the estimate is not exact per draw.
            Expect.isGreaterThan error 1e-3 "the estimates vary"
            Expect.isLessThan (abs (mean - expected)) (4.0 * error) $"mean {mean:F5} ± {error:F5} against {expected:F5}"
        }
        test "exact and Hutchinson flows of an MLP field agree in expectation (200 noise draws, RK4)" {
            use scope = torch.NewDisposeScope()
            use field = mlp 3 0.7 2L 16L
            use exact = new Cnf(field, 2, Exact, Solvers.rk4, StepControl.steps 8)
            use g = new torch.Generator(23UL)
            use hutchinson = new Cnf("hutchinson", field, 2, Hutchinson Gaussian, Solvers.rk4, StepControl.steps 8, Sensitivity.Autograd, 0.0, 1.0, g)
            let x = Tensors.f64m [| [| 0.5; -1.0 |]; [| 1.5; 0.2 |]; [| -0.3; 0.8 |] |]
            let reference = (use _ = torch.no_grad() in Tensors.toArray (exact.LogProbability x))
            let draws =
                [| for _ in 1 .. 200 ->
                    use inner = torch.NewDisposeScope()
                    use _ = torch.no_grad()
                    Tensors.toArray (hutchinson.LogProbability x) |]
            for i in 0 .. 2 do
                let mean, error = meanAndError (draws |> Array.map (fun d -> d[i]))
                Expect.isGreaterThan error 1e-4 "the estimates vary"
                Expect.isLessThan (abs (mean - reference[i])) (4.0 * error) $"sample {i}: mean {mean:F5} ± {error:F5} against exact {reference[i]:F5}"
        }
        test "sampling inverts the flow: Decode of Encode's z(t1) returns x" {
            use scope = torch.NewDisposeScope()
            use field = mlp 4 0.7 2L 16L
            use cnf = new Cnf(field, 2, Exact, Solvers.dopri5, tight)
            let x = Tensors.f64m [| [| 0.5; -1.0 |]; [| 1.5; 0.2 |]; [| -0.3; 0.8 |] |]
            let z, _ = cnf.Encode x
            Expect.isGreaterThan (Tensors.maxAbsDiff z x) 0.1 "the flow moves the points"
            let back = cnf.Sample z
            Expect.isLessThan (Tensors.maxAbsDiff back x) 1e-8 "x recovered"
            use g = new torch.Generator(1UL)
            let samples = cnf.Sample(7, g)
            Expect.sequenceEqual samples.shape [| 7L; 2L |] "n samples of dimension d"
            Expect.equal samples.dtype f64 "the field's dtype"
        }
        test "wrong shapes and a condition without a data-controlled layer are refused with the argument named" {
            use scope = torch.NewDisposeScope()
            use field = mlp 4 0.7 2L 16L
            use cnf = new Cnf(field, 2, Exact, Solvers.rk4, StepControl.steps 2)
            let e = Raises.raises<ArgumentException> (fun () -> cnf.LogProbability(torch.zeros([| 3L; 3L |], dtype = f64)) |> ignore)
            Expect.stringContains e.Message "[3, 3]" "names the shape"
            let c = Raises.raises<ArgumentException> (fun () -> cnf.LogProbability(torch.zeros([| 3L; 2L |], dtype = f64), torch.zeros([| 3L; 1L |], dtype = f64)) |> ignore)
            Expect.equal c.ParamName "condition" "names the condition"
        }
    ]

/// Mean log-likelihood under `cnf` (exact trace evaluation, no grad).
let private meanLogLikelihood (cnf: Cnf) (x: torch.Tensor) =
    use scope = torch.NewDisposeScope()
    use _ = torch.no_grad()
    (cnf.LogProbability x).mean().ToDouble()

[<Tests>]
let trainingTests =
    // Sequenced: run alone, as training under the parallel runner's contention for two cores is many times slower.
    testSequenced <| testList "Models/Cnf/training" [
        test "training (Hutchinson, RK4, autograd) raises the held-out log-likelihood of a four-component mixture" {
            use g = new torch.Generator(5UL)
            use field = mlp 8 0.3 2L 32L
            use cnf = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.rk4, StepControl.steps 6, Sensitivity.Autograd, 0.0, 1.0, g)
            use evaluate = new Cnf(field, 2, Exact, Solvers.rk4, StepControl.steps 6)
            use heldOut = mixture corners 1000 g
            let before = meanLogLikelihood evaluate heldOut
            use opt = torch.optim.Adam(cnf.parameters(), 0.02)
            for _ in 1 .. 150 do
                use scope = torch.NewDisposeScope()
                let x = mixture corners 128 g
                opt.zero_grad()
                let loss = (cnf.LogProbability x).mean().neg()
                loss.backward()
                opt.step() |> ignore
            let after = meanLogLikelihood evaluate heldOut
            Expect.isGreaterThan after (before + 0.5) $"held-out mean log-likelihood {before:F3} -> {after:F3}"
            Expect.equal cnf.LastStatistics.FunctionEvaluations 24 "6 RK4 steps"
        }
        test "the adjoint's gradients of the negative log-likelihood match autograd's (Hutchinson, same probes), and it trains" {
            use field = mlp 9 0.5 2L 16L
            use g = new torch.Generator(2UL)
            use x = mixture corners 16 g
            let gradients (sensitivity: Sensitivity) =
                use scope = torch.NewDisposeScope()
                use probes = new torch.Generator(41UL)
                // Not disposed: disposing a flow disposes its field, which the other flows share.
                let cnf = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.dopri5, tight, sensitivity, 0.0, 1.0, probes)
                field.zero_grad()
                let loss = (cnf.LogProbability x).mean().neg()
                Ode.backward loss
                [| for p in field.parameters() do yield! Tensors.toArray p.grad |]
            let byAutograd = gradients Sensitivity.Autograd
            for name, sensitivity in [ "adjoint", Sensitivity.adjoint; "interpolated adjoint", Sensitivity.interpolatedAdjoint ] do
                let e = Tensors.relativeError (gradients sensitivity) byAutograd
                Expect.isLessThan e 1e-6 $"{name}: relative error {e:E2}"
            let cnf = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.rk4, StepControl.steps 4, Sensitivity.adjoint, 0.0, 1.0, g)
            use opt = torch.optim.Adam(cnf.parameters(), 0.01)
            for _ in 1 .. 5 do
                use scope = torch.NewDisposeScope()
                opt.zero_grad()
                let loss = (cnf.LogProbability(mixture corners 64 g)).mean().neg()
                Ode.backward loss
                opt.step() |> ignore
                Expect.isTrue (Double.IsFinite(loss.ToDouble())) "a finite loss"
            Expect.isGreaterThan cnf.LastBackwardStatistics.FunctionEvaluations 0 "the backward solve ran"
        }
        test "data that require grad: the generic adjoints give autograd's log p and dL/dx (regression: the adjoint's forward trace)" {
            // The adjoint's forward solve once took the trace's Jacobian through the input's own view when x required
            // grad, and got a different Δ (log p off by 2% here) than autograd and the same solve without grad.
            use field = mlp 13 0.5 2L 16L
            use g = new torch.Generator(3UL)
            use x = mixture corners 8 g
            let solve (sensitivity: Sensitivity) =
                use probes = new torch.Generator(7UL)
                // Not disposed: disposing a flow disposes its field, which the other flows share.
                let cnf = new Cnf("cnf", field, 2, Exact, Solvers.rk4, StepControl.steps 4, sensitivity, 0.0, 1.0, probes)
                cnf.Backend <- Compiled.choice (false)
                use xg = x.detach().clone().requires_grad_(true)
                use logp = cnf.LogProbability xg
                Ode.backward (logp.sum())
                Tensors.toArray logp, Tensors.toArray xg.grad
            let logpA, gA = solve Sensitivity.Autograd
            for name, sensitivity in [ "adjoint", Sensitivity.adjoint; "interpolated adjoint", Sensitivity.interpolatedAdjoint ] do
                let logp, gx = solve sensitivity
                Expect.isLessThan (Tensors.relativeError logp logpA) 1e-12 $"{name}: log p"
                Expect.isLessThan (Tensors.relativeError gx gA) 1e-3 $"{name}: dL/dx (continuous against discrete gradients, 4 RK4 steps)"
        }
        test "a conditional flow (ConditionCat, one-hot labels) samples each class on its side" {
            use g = new torch.Generator(6UL)
            use field = Sequential(new ConditionCat(), Linear(4L, 32L, dtype = f64), Tanh(), Linear(32L, 2L, dtype = f64))
            Tensors.initialize 12 0.3 field
            use cnf = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.rk4, StepControl.steps 4, Sensitivity.Autograd, 0.0, 1.0, g)
            use opt = torch.optim.Adam(cnf.parameters(), 0.02)
            let batch n =
                use scope = torch.NewDisposeScope()
                let label = torch.randint(0L, 2L, [| int64 n |], dtype = torch.int64, generator = g)
                let centre = (label.to_type(f64) * 4.0 - 2.0).unsqueeze(1L)
                let x = torch.cat([| centre; torch.zeros_like(centre) |], 1L) + torch.randn([| int64 n; 2L |], dtype = f64, generator = g) * 0.5
                let onehot = torch.nn.functional.one_hot(label, 2L).to_type(f64)
                x.MoveToOuterDisposeScope(), onehot.MoveToOuterDisposeScope()
            for _ in 1 .. 100 do
                use scope = torch.NewDisposeScope()
                let x, c = batch 128
                opt.zero_grad()
                let loss = (cnf.LogProbability(x, c)).mean().neg()
                loss.backward()
                opt.step() |> ignore
            use scope = torch.NewDisposeScope()
            use _ = torch.no_grad()
            let meanX (label: int) =
                let c = Tensors.f64m [| (if label = 0 then [| 1.0; 0.0 |] else [| 0.0; 1.0 |]) |]
                (cnf.Sample(500, c, g)).select(1L, 0L).mean().ToDouble()
            let m0, m1 = meanX 0, meanX 1
            Expect.isLessThan m0 -1.0 $"class 0 (target −2): mean x {m0:F3}"
            Expect.isGreaterThan m1 1.0 $"class 1 (target +2): mean x {m1:F3}"
            Expect.isGreaterThan (m1 - m0) 2.0 $"class means {m0:F3} and {m1:F3}"
        }
    ]

/// Runs `action` and returns how many more tensors are alive on this thread afterwards, with its result.
let private leftAlive (action: unit -> 'a) : int64 * 'a =
    let before = DisposeScopeManager.Statistics.ThreadTotalLiveCount
    let result = action ()
    DisposeScopeManager.Statistics.ThreadTotalLiveCount - before, result

[<Tests>]
let lifetimeTests =
    testList "Models/Cnf/tensor lifetime" [
        for estimator in [ Exact; Hutchinson Rademacher ] do
            for name, sensitivity in [ "autograd", Sensitivity.Autograd; "adjoint", Sensitivity.adjoint ] do
                test $"LogProbability inside a dispose scope leaves only its result alive ({estimator}, {name})" {
                    use field = mlp 4 0.5 2L 8L
                    use cnf = new Cnf("cnf", field, 2, estimator, Solvers.dopri5, StepControl.adaptive 1e-6 1e-6, sensitivity, 0.0, 1.0, null)
                    use x = Tensors.f64m [| [| 0.5; -1.0 |]; [| 1.5; 0.2 |] |]
                    // A first solve of each kind: the fused kernels' workspaces (kept by the flow between solves, with
                    // their tensors over pinned arrays) are made then, not by the calls measured below.
                    let warmUp () =
                        use scope = torch.NewDisposeScope()
                        cnf.LogProbability x |> ignore
                        use _ = torch.no_grad()
                        cnf.Sample(3, null) |> ignore
                    warmUp ()
                    let left, logp = leftAlive (fun () ->
                        use scope = torch.NewDisposeScope()
                        (cnf.LogProbability x).MoveToOuterDisposeScope())
                    Expect.equal left 1L "the result alone"
                    Expect.sequenceEqual logp.shape [| 2L |] "one log-likelihood per sample"
                    let leftAfter, () = leftAlive (fun () -> logp.Dispose())
                    Expect.equal leftAfter -1L "and it is freed with its handle"
                    let leftBySampling, () = leftAlive (fun () ->
                        use scope = torch.NewDisposeScope()
                        use _ = torch.no_grad()
                        cnf.Sample(3, null) |> ignore)
                    Expect.equal leftBySampling 0L "sampling inside a scope leaves nothing"
                }
    ]
