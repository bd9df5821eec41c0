// The data-controlled Neural ODE's linear example (paper-spec §6.1, derived there): dz/ds = a z + b x with z(0) = x
// on [0, 1], x the input. By hand:
//   z(1) = c(a, b) x,   c(a, b) = e^a + (b/a)(e^a − 1),
//   ∂c/∂a = e^a + b (a e^a − e^a + 1)/a²,   ∂c/∂b = (e^a − 1)/a,
// and z(1) = −x (the reflection, which no 1-D flow of a field f(z) can represent) iff b = −a(1 + e^a)/(e^a − 1).
// The symbolic layer derives the adjoint system and the parameter integrands from the field as written, and the
// symbolic adjoint's gradients of L = ½ Σ (z(1) + x)² are checked against the hand formulas: at a generic (a, b),
// and at the reflection's b, where the gradient vanishes.
// Run after a build (`dotnet fsi build.fsx build`):  dotnet fsi paper-appendix/derivations/data-controlled-linear.fsx
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"
// A script that references built DLLs (not the package) loads the native backend itself, before TorchSharp does.
NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore

open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic

let z, x, a, b = Expr.tensor "z", Expr.tensor "x", Expr.scalar "a", Expr.scalar "b"
let field = Add(Mul(a, z), Mul(b, x))
let derivation = Formulas.derive field "z" [ "a"; "b" ] None
printfn "Derived (LaTeX):"
for line in Formulas.latex derivation [] do printfn "  %s" line
printfn "Derived (text):"
for line in Formulas.text derivation do printfn "  %s" line

let xs = [| -1.0; -0.3; 0.4; 1.0 |]
let c (av: float) (bv: float) = exp av + (bv / av) * (exp av - 1.0)
let byHand (av: float) (bv: float) =
    // L = ½ Σ (c x + x)²: dL/dc = Σ (c + 1) x².
    let dLdc = xs |> Array.sumBy (fun xi -> (c av bv + 1.0) * xi * xi)
    dLdc * (exp av + bv * (av * exp av - exp av + 1.0) / (av * av)), dLdc * (exp av - 1.0) / av

let symbolic (av: float) (bv: float) =
    use data = torch.tensor(xs, dtype = torch.float64)
    let parameters = Map [ "a", torch.tensor(av, dtype = torch.float64); "b", torch.tensor(bv, dtype = torch.float64); "x", data ]
    let r = SymbolicAdjoint.gradients field "z" None parameters None (fun zS -> zS + data) data (0.0, 1.0) Solvers.dopri5 (StepControl.adaptive 1e-12 1e-14)
    r.ParameterGradients["a"].ToDouble(), r.ParameterGradients["b"].ToDouble(), r.Final.data<float>().ToArray()

let mutable worst = 0.0
for av, bv in [ 0.7, 0.3; -0.4, 1.2 ] do
    let ga, gb, _ = symbolic av bv
    let ha, hb = byHand av bv
    printfn "a = %5.2f, b = %5.2f:  dL/da symbolic %.12f, by hand %.12f;  dL/db symbolic %.12f, by hand %.12f" av bv ga ha gb hb
    worst <- max worst (max (abs (ga - ha)) (abs (gb - hb)))
// The reflection: b = −a(1 + e^a)/(e^a − 1) makes z(1) = −x, a minimum of L with zero gradient.
let aStar = 0.7
let bStar = -aStar * (1.0 + exp aStar) / (exp aStar - 1.0)
let ga, gb, final = symbolic aStar bStar
let reflection = Array.map2 (fun zi xi -> abs (zi + xi)) final xs |> Array.max
printfn "reflection at a = %.2f, b = %.6f: max |z(1) + x| = %.2e, dL/da = %.2e, dL/db = %.2e" aStar bStar reflection ga gb
worst <- max worst (max reflection (max (abs ga) (abs gb)))
printfn "largest difference from the hand derivation: %.2e" worst
if worst > 1e-9 then
    eprintfn "MISMATCH"
    exit 1
