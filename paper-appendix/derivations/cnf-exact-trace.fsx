// The exact trace of a continuous normalizing flow's Jacobian, derived symbolically (Chen et al. 2018, Theorem 1:
// d log p(z(t))/dt = −tr ∂f/∂z). For the one-hidden-layer field f(z) = tanh(z W1 + b) W2 (z [N, d], W1 [d, h]):
//   ∂f/∂z (one row, row-vector convention) = W1 diag(1 − tanh²(u)) W2,   u = z W1 + b,
//   tr ∂f/∂z = Σ_k (1 − tanh²(u_k)) (W2 W1)_kk,
// one pass over the hidden units — where autograd's exact trace takes d backward passes. The symbolic layer finds the
// chain from the field as written (JacobianTrace.derive), prints it, and its trace is checked against the formula
// above evaluated by hand and against autograd's d passes.
// Run after a build (`dotnet fsi build.fsx build`):  dotnet fsi paper-appendix/derivations/cnf-exact-trace.fsx
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"
// A script that references built DLLs (not the package) loads the native backend itself, before TorchSharp does.
NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore

open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic

let z, w1, b, w2 = Expr.tensor "z", Expr.tensor "w1", Expr.tensor "b", Expr.tensor "w2"
let field = Expr.matmul (Expr.tanh (Add(Expr.matmul z w1, b))) w2
let jacobian = JacobianTrace.derive field "z"
printfn "f = %s" (Render.text field)
printfn "tr ∂f/∂z = %s" (JacobianTrace.text jacobian)

let g = new torch.Generator(5UL)
let d, h, n = 3L, 16L, 8L
let values =
    Map [ "z", torch.randn([| n; d |], dtype = torch.float64, generator = g); "w1", torch.randn([| d; h |], dtype = torch.float64, generator = g)
          "b", torch.randn([| h |], dtype = torch.float64, generator = g); "w2", torch.randn([| h; d |], dtype = torch.float64, generator = g) ]
let symbolic = JacobianTrace.at jacobian "z" values
// By hand: Σ_k (1 − tanh²(u_k)) (W2 W1)_kk.
let u = values["z"].matmul(values["w1"]) + values["b"]
let byHand = ((1.0 - u.tanh().square()) * values["w2"].matmul(values["w1"]).diagonal()).sum(1L)
// Autograd: d vector–Jacobian products.
let zr = values["z"].detach().requires_grad_(true)
let fz = Evaluate.evaluate (values |> Map.add "z" zr) field
let autograd = Trace.exact fz zr false
let largest (t: torch.Tensor) = t.abs().max().ToDouble()
let worst = max (largest (symbolic - byHand)) (largest (symbolic - autograd))
printfn "trace per sample (symbolic): %A" (symbolic.data<float>().ToArray() |> Array.map (fun v -> System.Math.Round(v, 6)))
printfn "largest difference from the hand formula and from autograd's %d passes: %.2e" d worst
if worst > 1e-12 then
    eprintfn "MISMATCH"
    exit 1
