/// Lagrangian neural networks (Cranmer et al. 2020): with L given exactly, the field's accelerations are the
/// Euler–Lagrange ones (spring, coupled anisotropic oscillator, double pendulum) to 1e-10; gradients with respect to
/// L's parameters equal finite differences and flow through the adjoint; a degenerate L is refused by name unless a
/// ridge is given; a short training run on the spring learns its accelerations.
module NeuralOde.Tests.Models.LagrangianFieldTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private f64 = torch.float64

/// A module from a function (exact Lagrangians).
type private Lambda(f: torch.Tensor -> torch.Tensor) =
    inherit Module<torch.Tensor, torch.Tensor>("lambda")
    override _.forward(x) = f x

let private col (x: torch.Tensor) (i: int64) = x.narrow(1L, i, 1L).squeeze(1L)

/// L = ½ q̇ᵀ(I + AᵀA)q̇ + 0.1·g(q, q̇) with A [2, 2] and g a small tanh network: every parameter reaches q̈.
type private Parametric() as this =
    inherit Module<torch.Tensor, torch.Tensor>("parametric")
    let a = Parameter(torch.zeros([| 2L; 2L |], dtype = torch.float64))
    let g = Sequential(Linear(4L, 8L, dtype = torch.float64), Tanh(), Linear(8L, 1L, dtype = torch.float64))
    do
        this.register_parameter("a", a)
        this.register_module("g", g)
    override _.RegisterComponents() = ()
    override _.forward(x) =
        let v = x.narrow(1L, 2L, 2L)
        let av = v.matmul(a.t())                                   // (A q̇) per sample
        (v.square().sum(1L) + av.square().sum(1L)) * 0.5 + g.forward(x).squeeze(1L) * 0.1

/// The double pendulum (masses m1, m2, rods l1, l2, gravity gr), state [θ1, θ2, ω1, ω2].
let private m1, m2, l1, l2, gr = 1.0, 1.5, 1.0, 0.8, 9.81

let private doublePendulum () =
    new Lambda(fun x ->
        let t1, t2, w1, w2 = col x 0L, col x 1L, col x 2L, col x 3L
        w1.square() * (0.5 * (m1 + m2) * l1 * l1) + w2.square() * (0.5 * m2 * l2 * l2)
        + w1 * w2 * (t1 - t2).cos() * (m2 * l1 * l2)
        + t1.cos() * ((m1 + m2) * gr * l1) + t2.cos() * (m2 * gr * l2))

/// The double pendulum's accelerations written out (the closed form Cranmer et al.'s notebook checks against).
let private doublePendulumAccelerations (x: float[]) =
    let t1, t2, w1, w2 = x[0], x[1], x[2], x[3]
    let a1 = (l2 / l1) * (m2 / (m1 + m2)) * cos (t1 - t2)
    let a2 = (l1 / l2) * cos (t1 - t2)
    let f1 = -(l2 / l1) * (m2 / (m1 + m2)) * w2 * w2 * sin (t1 - t2) - (gr / l1) * sin t1
    let f2 = (l1 / l2) * w1 * w1 * sin (t1 - t2) - (gr / l2) * sin t2
    [| (f1 - a1 * f2) / (1.0 - a1 * a2); (f2 - a2 * f1) / (1.0 - a1 * a2) |]

/// Every parameter's gradient, zeros where none flowed (a last bias does not change the accelerations).
let private parameterGradients (m: Module) =
    m.parameters() |> Seq.collect (fun p -> if isNull p.grad then Array.zeroCreate (int (p.numel())) else Tensors.toArray p.grad) |> Array.ofSeq

let private randomStates (seed: uint64) (n: int64) (width: int64) =
    use g = new torch.Generator(seed)
    torch.randn([| n; width |], dtype = f64, generator = g)

[<Tests>]
let tests =
    testList "Models/Lagrangian" [
        test "the spring L = q̇²/2 − q²/2 gives (q̇, −q), and Energy is q̇²/2 + q²/2" {
            use field = new LagrangianField(1, new Lambda(fun x -> (col x 1L).square() * 0.5 - (col x 0L).square() * 0.5))
            use x = randomStates 1UL 7L 2L
            use f = field.forward x
            use expected = torch.cat([| x.narrow(1L, 1L, 1L); x.narrow(1L, 0L, 1L).neg() |], 1L)
            Expect.isLessThan (Tensors.maxAbsDiff f expected) 1e-12 "(q̇, −q)"
            use e = field.Energy x
            use h = x.square().sum(1L) * 0.5
            Expect.isLessThan (Tensors.maxAbsDiff e h) 1e-12 "E = q̇ ∂L/∂q̇ − L"
        }
        test "a coupled anisotropic oscillator L = ½q̇ᵀMq̇ − ½qᵀKq gives q̈ = −M⁻¹Kq to 1e-10" {
            use m = Tensors.f64m [| [| 2.0; 0.6 |]; [| 0.6; 1.0 |] |]
            use k = Tensors.f64m [| [| 3.0; -1.0 |]; [| -1.0; 0.5 |] |]
            let quadratic (a: torch.Tensor) (z: torch.Tensor) = (z.matmul(a) * z).sum(1L) * 0.5
            use field = new LagrangianField(2, new Lambda(fun x -> quadratic m (x.narrow(1L, 2L, 2L)) - quadratic k (x.narrow(1L, 0L, 2L))))
            use x = randomStates 2UL 9L 4L
            use f = field.forward x
            use expected = torch.linalg.solve(m, k.matmul(x.narrow(1L, 0L, 2L).t())).t().neg()
            use acc = f.narrow(1L, 2L, 2L)
            Expect.isLessThan (Tensors.maxAbsDiff acc expected) 1e-10 "q̈ = −M⁻¹Kq"
        }
        test "the double pendulum's Lagrangian gives the closed-form Euler–Lagrange accelerations to 1e-10" {
            use field = new LagrangianField(2, doublePendulum ())
            use x = randomStates 3UL 16L 4L
            use f = field.forward x
            let xs, fs = Tensors.toArray x, Tensors.toArray f
            for i in 0 .. 15 do
                let state = xs[4 * i .. 4 * i + 3]
                let expected = doublePendulumAccelerations state
                Expect.floatClose { absolute = 1e-10; relative = 1e-10 } fs[4 * i + 2] expected[0] $"θ̈1 at sample {i}"
                Expect.floatClose { absolute = 1e-10; relative = 1e-10 } fs[4 * i + 3] expected[1] $"θ̈2 at sample {i}"
                Expect.equal fs[4 * i .. 4 * i + 1] state[2..3] "θ̇ passed through"
        }
        test "gradients with respect to L's parameters equal central finite differences (measured 2.6e-10; 1e-7 asserted)" {
            use lagrangian = new Parametric()
            Tensors.initialize 4 0.4 lagrangian
            use field = new LagrangianField(2, lagrangian)
            use x = randomStates 5UL 6L 4L
            use w = randomStates 6UL 6L 4L
            let loss () = (field.forward x * w).sum()
            for p in field.parameters() do p.grad <- null
            let total = loss ()
            total.backward()
            total.Dispose()
            let parameters = field.parameters() |> Array.ofSeq
            let analytic = parameterGradients field
            let eps = 1e-6
            let numeric =
                parameters |> Array.collect (fun p ->
                    use _ = torch.no_grad()
                    use flat = p.view(-1L)
                    Array.init (int (p.numel())) (fun j ->
                        let at (delta: float) =
                            use e = flat[int64 j]
                            let original = e.ToDouble()
                            e.fill_(Scalar.op_Implicit (original + delta)) |> ignore
                            let value = (use l = loss () in l.ToDouble())
                            e.fill_(Scalar.op_Implicit original) |> ignore
                            value
                        (at eps - at -eps) / (2.0 * eps)))
            let err = Tensors.relativeError analytic numeric
            Expect.isLessThan err 1e-7 $"relative error {err:E2} over {analytic.Length} parameter entries"
        }
        test "the adjoint through a Lagrangian field (third derivatives of L) equals autograd through the solver (measured 3e-11; 1e-8 asserted)" {
            use lagrangian = new Parametric()
            Tensors.initialize 7 0.4 lagrangian
            use field = new LagrangianField(2, lagrangian)
            use x0v = randomStates 8UL 3L 4L
            use w = randomStates 9UL 3L 4L
            let gradientsBy (sensitivity: Sensitivity) =
                // Not disposed here: disposing a block disposes its field, which the next call reuses.
                let block = new NeuralOdeModel(field, Solvers.dopri5, Sensitivities.tight, sensitivity, [| 0.0; 0.5 |])
                use x0 = x0v.clone().requires_grad_(true)
                for p in field.parameters() do p.grad <- null
                use xT = block.forward x0
                use loss = (xT * w).sum()
                Ode.backward loss
                Array.append (Tensors.toArray x0.grad) (parameterGradients field)
            let byAutograd = gradientsBy Sensitivity.Autograd
            let byAdjoint = gradientsBy Sensitivity.adjoint
            let err = Tensors.relativeError byAdjoint byAutograd
            Expect.isLessThan err 1e-8 $"relative error {err:E2}"
        }
        test "a degenerate Lagrangian (linear in q̇) is refused by name, and solvable with a ridge" {
            let linear () = new Lambda(fun x -> col x 1L - (col x 0L).square() * 0.5)
            use field = new LagrangianField(1, linear ())
            use x = randomStates 10UL 4L 2L
            let e = Raises.raises<ArgumentException> (fun () -> field.forward x |> ignore)
            Expect.equal e.ParamName "lagrangian" "names the Lagrangian"
            Expect.stringContains e.Message "singular" "says why"
            Expect.stringContains e.Message "sample 0" "says where"
            use ridged = new LagrangianField(1, linear (), 1.0)
            use f = ridged.forward x
            use expected = x.narrow(1L, 0L, 1L).neg()
            Expect.isLessThan (Tensors.maxAbsDiff (f.narrow(1L, 1L, 1L)) expected) 1e-12 "with ridge 1: q̈ = (∂L/∂q)/1 = −q"
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> new LagrangianField(1, linear (), -1.0) |> ignore)
            Expect.equal e.ParamName "ridge" "ridge ≥ 0"
            use narrow = torch.zeros([| 2L; 3L |], dtype = f64)
            let e = Raises.raises<ArgumentException> (fun () -> field.forward narrow |> ignore)
            Expect.equal e.ParamName "x" "a state of 2n features"
        }
        test "a short training run learns the spring's accelerations from (x, q̈) pairs (held-out error 3.2%; < 5% asserted)" {
            // 256 states uniform in [−1.5, 1.5]², targets q̈ = −q; L = 2-32-32-1 softplus network, Adam 3e-2, 600
            // full-batch steps; accuracy: the relative RMS error of q̈ on 200 held-out states in [−1, 1]².
            use g = new torch.Generator(21UL)
            use states = (torch.rand([| 256L; 2L |], dtype = f64, generator = g) - 0.5) * 3.0
            use targets = states.narrow(1L, 0L, 1L).neg()
            use net = Sequential(Linear(2L, 32L, dtype = f64), Softplus(), Linear(32L, 32L, dtype = f64), Softplus(), Linear(32L, 1L, dtype = f64))
            Tensors.initialize 22 0.3 net
            use field = new LagrangianField(1, net)
            use optimizer = torch.optim.Adam(field.parameters(), 3e-2)
            for _ in 1 .. 600 do
                use scope = torch.NewDisposeScope()
                optimizer.zero_grad()
                let loss = (field.forward(states).narrow(1L, 1L, 1L) - targets).square().mean()
                loss.backward()
                optimizer.step() |> ignore
            use test = (torch.rand([| 200L; 2L |], dtype = f64, generator = g) - 0.5) * 2.0
            use predicted = (use _ = torch.no_grad() in field.forward test).narrow(1L, 1L, 1L)
            let err = Tensors.relativeError (Tensors.toArray predicted) (Tensors.toArray (test.narrow(1L, 0L, 1L).neg()))
            // Measured: 3.2% (22% after 100 iterations, 8.6% after 300).
            Expect.isLessThan err 0.05 $"relative RMS error of q̈ on held-out states {err:E2}"
        }
    ]
