/// The paper's formulas derived for a field: the worked example of paper-spec §2.4 / Appendix A (a scalar Galerkin
/// field f = θ(s) z + sin z with the running loss (z − sin 2πs)²), whose adjoint system is known by hand:
/// ȧ = −a(θ + cos z) − 2(z − sin 2πs), δL/δθ(s) = a z.
module NeuralOde.Tests.Symbolic.FormulasTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

let private z, theta, s = Expr.tensor "z", Expr.scalar "theta", Expr.scalar "s"
let private field = Add(Mul(theta, z), Expr.sin z)
let private loss = Pow(Sub(z, Expr.sin (Mul(Const(2.0 * Math.PI), s))), 2.0)

[<Tests>]
let tests =
    testList "Symbolic/formulas" [
        test "the worked example's adjoint system and Theorem 1 integrand equal the hand derivation" {
            let d = Formulas.derive field "z" [ "theta" ] (Some loss)
            use g = torch.Generator(3UL)
            for _ in 1 .. 20 do
                use zv = torch.randn([| 5L |], dtype = torch.float64, generator = g)
                use av = torch.randn([| 5L |], dtype = torch.float64, generator = g)
                use th = torch.randn([||], dtype = torch.float64, generator = g)
                use sv = torch.rand([||], dtype = torch.float64, generator = g)
                let env = Map [ "z", zv; "a", av; "theta", th; "s", sv ]
                use derived = Evaluate.evaluate env d.AdjointDerivative
                use byHand = -av * (th + zv.cos()) - 2.0 * (zv - (sv * (2.0 * Math.PI)).sin())
                Expect.isLessThan (Tensors.relativeError (Tensors.toArray derived) (Tensors.toArray byHand)) 1e-12 "ȧ"
                use integrand = Evaluate.evaluate env d.ParameterIntegrands["theta"]
                use aTimesZ = (av * zv).sum()
                Expect.floatClose Accuracy.veryHigh (integrand.ToDouble()) (aTimesZ.ToDouble()) "δL/δθ(s) = Σ a z (θ is a scalar shared by the batch)"
        }
        test "the derivation renders as LaTeX and text" {
            let d = Formulas.derive field "z" [ "theta" ] (Some loss)
            let lines = Formulas.latex d [ "theta" ]
            Expect.equal lines[0] "\\dot{z} = \\theta \\odot z + \\sin\\left(z\\right)" "the field"
            // Checked against the hand derivation written out (paper-spec §2.4): ȧ = −a(θ + cos z) − 2(z − sin 2πs).
            Expect.equal lines[1] "\\ell(s, z) = \\left(z - \\sin\\left(2\\pi s\\right)\\right)^{2}" "the running loss"
            Expect.equal lines[2] "\\dot{a} = -\\left(a \\odot \\theta + a \\odot \\cos\\left(z\\right) + 2 \\left(z - \\sin\\left(2\\pi s\\right)\\right)\\right)" "the adjoint system"
            Expect.equal lines[3] "\\frac{dL}{d\\alpha_j} = \\int_0^S \\left(\\sum \\left(a \\odot z\\right)\\right) \\psi_j(s)\\, ds \\quad (\\theta(s) = \\textstyle\\sum_j \\alpha_j \\psi_j(s))" "Corollary 1's projection"
            let stacked = Formulas.latexFor d [] [ "theta" ]
            Expect.equal stacked[3] "\\frac{dL}{d\\theta_i} = \\int_{s_i}^{s_{i+1}} \\sum \\left(a \\odot z\\right)\\, ds \\quad (\\theta(s) = \\theta_i \\text{ on } [s_i, s_{i+1}))" "Corollary 2's per-interval integral"
            let text = Formulas.text d
            Expect.equal text[0] "dz/ds = theta .* z + sin(z)" "plain text"
        }
        test "the adjoint's name never collides with a variable: a parameter named a makes it λ" {
            let a, b, x = Expr.scalar "a", Expr.scalar "b", Expr.tensor "x"
            let d = Formulas.derive (Add(Mul(a, z), Mul(b, x))) "z" [ "a"; "b" ] None
            Expect.equal d.Adjoint "λ" "a is taken"
            Expect.equal (Render.text d.AdjointDerivative) "-(λ .* a)" "ȧ = −λ a, not −a a"
            Expect.equal (Render.latex d.AdjointDerivative) "-\\left(\\lambda \\odot a\\right)" "λ in LaTeX"
            Expect.equal (Render.latex (Add(Expr.tensor "alpha0", Expr.tensor "w12"))) "\\alpha_{0} + w_{12}" "Greek names and subscripts"
        }
        test "a parameter the field does not use is refused by name" {
            let e = Raises.raises<ArgumentException> (fun () -> Formulas.derive field "z" [ "w" ] None |> ignore)
            Expect.stringContains e.Message "'w'" "names it"
        }
    ]
