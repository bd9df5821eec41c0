// The paper's formulas derived symbolically for its worked example (paper-spec §2.4, Appendix A): a scalar Galerkin
// field f(s, z) = θ(s) z + sin z with the running loss l(s, z) = (z − sin 2πs)². By hand (Proposition 1, Theorem 1):
//   ȧ = −a (θ + cos z) − 2 (z − sin 2πs),   δL/δθ(s) = a z,   dL/dα_j = ∫_0^1 a z ψ_j ds (Corollary 1).
// The symbolic layer (src/NeuralOde.Core/Symbolic) derives the same from the field as written, prints it as LaTeX
// and text, and this script checks it against the hand formula at random points.
// Run after a build (`dotnet fsi build.fsx build`):  dotnet fsi paper-appendix/derivations/symbolic-adjoint.fsx
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"
// A script that references built DLLs (not the package) loads the native backend itself, before TorchSharp does.
NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore

open System
open TorchSharp
open NeuralOde.Core.Symbolic

let z, theta, s = Expr.tensor "z", Expr.scalar "theta", Expr.scalar "s"
let field = Add(Mul(theta, z), Expr.sin z)
let loss = Pow(Sub(z, Expr.sin (Mul(Const(2.0 * Math.PI), s))), 2.0)
let derivation = Formulas.derive field "z" [ "theta" ] (Some loss)

printfn "Derived (LaTeX):"
for line in Formulas.latex derivation [ "theta" ] do printfn "  %s" line
printfn "Derived (text):"
for line in Formulas.text derivation do printfn "  %s" line

let g = new torch.Generator(11UL)
let mutable worst = 0.0
for _ in 1 .. 100 do
    use scope = torch.NewDisposeScope()
    let zv = torch.randn([| 8L |], dtype = torch.float64, generator = g)
    let av = torch.randn([| 8L |], dtype = torch.float64, generator = g)
    let th = torch.randn([||], dtype = torch.float64, generator = g)
    let sv = torch.rand([||], dtype = torch.float64, generator = g)
    let env = Map [ "z", zv; "a", av; "theta", th; "s", sv ]
    let derived = Evaluate.evaluate env derivation.AdjointDerivative
    let byHand = -av * (th + zv.cos()) - 2.0 * (zv - (sv * (2.0 * Math.PI)).sin())
    worst <- max worst ((derived - byHand).abs().max().ToDouble())
printfn "largest difference between the derived and the hand-written adjoint system over 100 random points: %.2e" worst
if worst > 1e-12 then
    eprintfn "the symbolic adjoint system differs from the hand derivation"
    exit 1
