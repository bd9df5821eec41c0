/// Every basis on its domain: orthogonality and norms (Gauss–Legendre quadrature from MathNet.Numerics; Chebyshev by
/// Gauss–Chebyshev nodes, its weight being singular at the ends), closed-form antiderivatives against quadrature,
/// derivatives against central differences.
module NeuralOde.Tests.Bases.BasisTests

open System
open Expecto
open MathNet.Numerics.Integration
open NeuralOde.Core

let private bases =
    [ Basis.fourier 3 1.0; Basis.fourier 2 2.5; Basis.polynomial 5 1.0; Basis.polynomial 4 3.0
      Basis.chebyshev 6 1.0; Basis.chebyshev 4 2.0; Basis.legendre 6 1.0; Basis.legendre 5 0.7
      // torchdyn's radial bases (smooth on the domain: the vanilla one's kink |s − c| at its default centre 0 is the
      // domain's end; RadialBasisTests integrates it across an inner centre).
      Basis.gaussianRbf 5 1.0; Basis.gaussianRbfWith 0.4 1.5 4 2.0; Basis.vanillaRbf 4 1.0
      Basis.multiquadricRbf 5 1.0; Basis.multiquadricRbfWith 0.7 3.0 4 2.0 ]

/// ∫_0^S g(s) w(s) ds, exact for the smooth integrands here (Gauss–Chebyshev for the Chebyshev weight).
let private integrate (b: Basis) (g: float -> float) =
    match b.Name with
    | "chebyshev" ->
        // ∫_{−1}^{1} h(x)/√(1−x²) dx = π/n Σ h(cos((2i−1)π/(2n))); ds = S/2 dx.
        let n = 64
        let sum = Seq.sum (seq { for i in 1 .. n -> g ((cos (float (2 * i - 1) * Math.PI / float (2 * n)) + 1.0) * b.Domain / 2.0) })
        Math.PI / float n * sum * b.Domain / 2.0
    | _ ->
        let w = defaultArg b.OrthogonalityWeight (fun _ -> 1.0)
        GaussLegendreRule.Integrate((fun s -> g s * w s), 0.0, b.Domain, 64)

[<Tests>]
let tests =
    testList "Bases" [
        for b in bases do
            match b.Norms with
            | Some norms ->
                test $"{b}: orthogonal with the stated norms" {
                    for i in 0 .. b.Terms - 1 do
                        for j in 0 .. b.Terms - 1 do
                            let inner = integrate b (fun s -> (b.Values s)[i] * (b.Values s)[j])
                            let expected = if i = j then norms[i] else 0.0
                            Expect.isLessThan (abs (inner - expected)) 1e-10 $"⟨ψ_{i}, ψ_{j}⟩ = {inner}, expected {expected}"
                }
            | None -> ()
            test $"{b}: closed-form integrals equal quadrature" {
                for upper in [ 0.0; 0.3 * b.Domain; 0.77 * b.Domain; b.Domain ] do
                    let closed = b.Integrals upper
                    for j in 0 .. b.Terms - 1 do
                        let numeric = GaussLegendreRule.Integrate((fun s -> (b.Values s)[j]), 0.0, upper, 64)
                        Expect.isLessThan (abs (closed[j] - numeric)) 1e-11 $"∫_0^{upper} ψ_{j}: closed {closed[j]}, quadrature {numeric}"
            }
            test $"{b}: derivatives equal central differences" {
                for s in [ 0.05 * b.Domain; 0.5 * b.Domain; 0.93 * b.Domain ] do
                    let eps = 1e-6 * b.Domain
                    let fd = Array.map2 (fun a c -> (a - c) / (2.0 * eps)) (b.Values (s + eps)) (b.Values (s - eps))
                    Array.iteri2 (fun j d f -> Expect.isLessThan (abs (d - f)) (1e-6 * (1.0 + abs d)) $"ψ'_{j}({s})") (b.Derivatives s) fd
            }
        test "byName knows every basis and names the known ones otherwise" {
            Expect.equal ((Basis.byName "Legendre") 3 1.0).Name "legendre" "case-insensitive"
            let e = NeuralOde.Tests.Support.Raises.raises<ArgumentException> (fun () -> Basis.byName "wavelet" |> ignore)
            Expect.stringContains e.Message "chebyshev" "lists them"
        }
    ]
