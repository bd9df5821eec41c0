/// torchdyn's radial bases (torchdyn/nn/galerkin.py: GaussianRBF, VanillaRBF, MultiquadRBF) at stated points against
/// their formulas, evaluated independently (Python's math module, double precision) and written here by hand; and
/// custom bases, whose functions are checked at every call.
module NeuralOde.Tests.Bases.RadialBasisTests

open System
open Expecto
open MathNet.Numerics.Integration
open NeuralOde.Core
open NeuralOde.Tests.Support

let private close (what: string) (expected: float[]) (got: float[]) =
    Expect.equal got.Length expected.Length $"{what}: one number per function"
    Array.iteri2 (fun j e g -> Expect.isLessThan (abs (g - e)) 1e-12 $"{what}[{j}]: {g}, expected {e}") expected got

[<Tests>]
let tests =
    testList "Bases/RBF" [
        // torchdyn's defaults: centre c = 0, scale ε = 2; m = 3 shapes a_k = n_k/ε with n = linspace(0, 3, 3) = [0, 1.5, 3],
        // so a = [0, 0.75, 1.5]. At s = 0.4:
        test "GaussianRBF (torchdyn's defaults) at s = 0.4" {
            let b = Basis.gaussianRbf 3 1.0
            // ψ_k = exp(−(a_k s)²): exp(0), exp(−0.09), exp(−0.36)
            close "values" [| 1.0; 0.9139311852712282; 0.697676326071031 |] (b.Values 0.4)
            // ψ_k' = −2 a_k² s exp(−(a_k s)²)
            close "derivatives" [| 0.0; -0.41126903337205273; -1.255817386927856 |] (b.Derivatives 0.4)
            // ∫_0^s ψ_k = √π/(2a_k) erf(a_k s) (s for a_0 = 0)
            close "integrals" [| 0.4; 0.3883171768759541; 0.3567690178720525 |] (b.Integrals 0.4)
        }
        test "VanillaRBF (torchdyn's defaults) at s = 0.4" {
            let b = Basis.vanillaRbf 3 1.0
            // ψ_k = a_k |s|; ψ_k' = a_k sign(s); ∫_0^s ψ_k = a_k s|s|/2
            close "values" [| 0.0; 0.30000000000000004; 0.6000000000000001 |] (b.Values 0.4)
            close "derivatives" [| 0.0; 0.75; 1.5 |] (b.Derivatives 0.4)
            close "integrals" [| 0.0; 0.06000000000000001; 0.12000000000000002 |] (b.Integrals 0.4)
        }
        test "MultiquadRBF (torchdyn's defaults) at s = 0.4" {
            let b = Basis.multiquadricRbf 3 1.0
            // ψ_k = 1 + √(1 + (a_k s)²); ψ_k' = a_k² s/√(1 + (a_k s)²)
            close "values" [| 2.0; 2.044030650891055; 2.16619037896906 |] (b.Values 0.4)
            close "derivatives" [| 0.0; 0.2155109141747591; 0.7717436331412898 |] (b.Derivatives 0.4)
            // ∫_0^s ψ_k = G(s) − G(0), G(u) = u + (u √(1 + a²u²) + asinh(a u)/a)/2 (2u for a = 0)
            close "integrals" [| 0.8; 0.8059214952204927; 0.822846375371228 |] (b.Integrals 0.4)
        }
        // Centre c = 0.3, scale ε = 1.5, m = 4 on [0, 2]: n = linspace(0, 4, 4) = [0, 4/3, 8/3, 4], a = n/1.5. At s = 0.8
        // (u = s − c = 0.5), integrals from 0 (u = −0.3), across the centre:
        test "a centre and a scale of one's own: Gaussian, vanilla and multiquadric at s = 0.8" {
            let g = Basis.gaussianRbfWith 0.3 1.5 4 2.0
            // exp(−(a_k u)²); −2a_k² u exp(−(a_k u)²); √π/(2a_k) (erf(a_k u) − erf(−0.3 a_k))
            close "gaussian values" [| 1.0; 0.8207548082982681; 0.4537887685192294; 0.1690133154060661 |] (g.Values 0.8)
            close "gaussian derivatives" [| 0.0; -0.6484976263097426; -1.4341966017397867; -1.2018724651098032 |] (g.Derivatives 0.8)
            close "gaussian integrals" [| 0.8; 0.7619788298088818; 0.668279729645479; 0.5592383886727575 |] (g.Integrals 0.8)
            let v = Basis.vanillaRbfWith 0.3 1.5 4 2.0
            // a_k |u|; a_k sign(u); a_k (F(0.5) − F(−0.3)), F(u) = u|u|/2
            close "vanilla values" [| 0.0; 0.4444444444444444; 0.8888888888888888; 1.3333333333333333 |] (v.Values 0.8)
            close "vanilla derivatives" [| 0.0; 0.8888888888888888; 1.7777777777777777; 2.6666666666666665 |] (v.Derivatives 0.8)
            close "vanilla integrals" [| 0.0; 0.15111111111111108; 0.30222222222222217; 0.45333333333333325 |] (v.Integrals 0.8)
            let q = Basis.multiquadricRbfWith 0.3 1.5 4 2.0
            // 1 + √(1 + (a_k u)²); a_k² u/√(1 + (a_k u)²); G(0.5) − G(−0.3)
            close "multiquadric values" [| 2.0; 2.0943175335329007; 2.337954953199144; 2.666666666666667 |] (q.Values 0.8)
            close "multiquadric derivatives" [| 0.0; 0.36101196982528677; 1.1810912690309685; 2.1333333333333333 |] (q.Derivatives 0.8)
            close "multiquadric integrals" [| 1.6; 1.619523171988383; 1.673323050910051; 1.7521254959234371 |] (q.Integrals 0.8)
        }
        test "the vanilla RBF across an inner centre: integrals equal quadrature split at the kink, derivatives central differences off it" {
            let b = Basis.vanillaRbfWith 0.3 1.5 4 2.0
            for upper in [ 0.1; 0.3; 1.1; 2.0 ] do
                let closed = b.Integrals upper
                for j in 0 .. 3 do
                    let piece lo hi = if hi <= lo then 0.0 else GaussLegendreRule.Integrate((fun s -> (b.Values s)[j]), lo, hi, 16)
                    let numeric = piece 0.0 (min upper 0.3) + piece 0.3 upper
                    Expect.isLessThan (abs (closed[j] - numeric)) 1e-12 $"∫_0^{upper} ψ_{j}"
            for s in [ 0.1; 0.7; 1.9 ] do
                let eps = 1e-6
                let fd = Array.map2 (fun a c -> (a - c) / (2.0 * eps)) (b.Values (s + eps)) (b.Values (s - eps))
                Array.iteri2 (fun j d f -> Expect.isLessThan (abs (d - f)) 1e-8 $"ψ'_{j}({s})") (b.Derivatives s) fd
        }
        test "the Gaussian integral keeps its digits far in the tail (erfc differences)" {
            let b = Basis.gaussianRbfWith 0.0 0.05 3 1.0     // a = [0, 30, 60]: ψ_2 is negligible past s = 0.1
            let closed = (b.Integrals 1.0)[2]
            let numeric = GaussLegendreRule.Integrate((fun s -> (b.Values s)[2]), 0.0, 0.2, 64)
            // √π/(2·60) erf(60) = √π/120 to double precision
            Expect.isLessThan (abs (closed - sqrt Math.PI / 120.0)) 1e-15 "√π/120"
            Expect.isLessThan (abs (closed - numeric)) 1e-12 "quadrature"
        }
        test "one term: the shape is 0 (torchdyn's linspace(0, 1, 1) = [0])" {
            close "gaussian" [| 1.0 |] ((Basis.gaussianRbf 1 1.0).Values 0.7)
            close "multiquadric" [| 2.0 |] ((Basis.multiquadricRbf 1 1.0).Values 0.7)
        }
        test "byName knows the radial bases by our names and torchdyn's" {
            for name, expected in [ "GaussianRBF", "gaussianrbf"; "VanillaRBF", "vanillarbf"; "MultiquadRBF", "multiquadricrbf"; "multiquadricrbf", "multiquadricrbf" ] do
                Expect.equal ((Basis.byName name) 3 1.0).Name expected name
        }
        test "bad centres and scales are refused by name" {
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> Basis.gaussianRbfWith 0.0 0.0 3 1.0 |> ignore)
            Expect.equal e.ParamName "scale" "scale"
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> Basis.multiquadricRbfWith nan 2.0 3 1.0 |> ignore)
            Expect.equal e.ParamName "centre" "centre"
        }
    ]

[<Tests>]
let customTests =
    testList "Bases/custom" [
        test "a custom basis is data: its functions, name and domain, checked through valuesAt" {
            let b = Basis.custom "hat" 2 1.0 (fun s -> [| 1.0; s |]) (fun _ -> [| 0.0; 1.0 |]) (fun s -> [| s; s * s / 2.0 |])
            Expect.equal (Basis.valuesAt b 0.5) [| 1.0; 0.5 |] "values"
            Expect.equal (b.Integrals 1.0) [| 1.0; 0.5 |] "integrals"
            Expect.isFalse b.Extrapolates "not extrapolated unless said"
            Raises.raises<ArgumentOutOfRangeException> (fun () -> Basis.valuesAt b 1.5 |> ignore) |> ignore
        }
        test "a function returning the wrong number of values fails at the call, naming the function, the basis and the depth" {
            let b = Basis.custom "lopsided" 3 1.0 (fun s -> [| 1.0; s |]) (fun _ -> [| 0.0; 1.0; 0.0 |]) (fun _ -> null)
            let e = Raises.raises<ArgumentException> (fun () -> b.Values 0.25 |> ignore)
            Expect.equal e.ParamName "values" "the function"
            Expect.stringContains e.Message "lopsided" "the basis"
            Expect.stringContains e.Message "returned 2 numbers; it must return 3" "the counts"
            Expect.stringContains e.Message "values(0.25)" "the depth"
            let e = Raises.raises<ArgumentException> (fun () -> b.Integrals 0.25 |> ignore)
            Expect.equal e.ParamName "integrals" "null"
        }
        test "bad arguments are refused by name" {
            let ok = fun (_: float) -> [| 1.0 |]
            Expect.equal (Raises.raises<ArgumentException> (fun () -> Basis.custom " " 1 1.0 ok ok ok |> ignore)).ParamName "name" "name"
            Expect.equal (Raises.raises<ArgumentOutOfRangeException> (fun () -> Basis.custom "b" 0 1.0 ok ok ok |> ignore)).ParamName "terms" "terms"
            Expect.equal (Raises.raises<ArgumentOutOfRangeException> (fun () -> Basis.custom "b" 1 -1.0 ok ok ok |> ignore)).ParamName "domain" "domain"
            Expect.equal (Raises.raises<ArgumentNullException> (fun () -> Basis.custom "b" 1 1.0 ok Unchecked.defaultof<_> ok |> ignore)).ParamName "derivatives" "derivatives"
        }
        test "transformed depths: anywhere for a basis that extrapolates, inside [0, S] otherwise, refused with the dilation and shift" {
            let values, derivatives = Basis.transformedAt (Basis.legendre 3 1.0) 1.5 0.2 1.0
            close "legendre at 1.7 (x = 2.4)" [| 1.0; 2.4; (3.0 * 2.4 * 2.4 - 1.0) / 2.0 |] values
            close "P' ×2/S" [| 0.0; 2.0; 3.0 * 2.4 * 2.0 |] derivatives
            let custom = Basis.custom "hat" 2 1.0 (fun s -> [| 1.0; s |]) (fun _ -> [| 0.0; 1.0 |]) (fun s -> [| s; s * s / 2.0 |])
            close "inside" [| 1.0; 0.8 |] (fst (Basis.transformedAt custom 0.5 0.3 1.0))
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () -> Basis.transformedAt custom 1.5 0.2 1.0 |> ignore)
            Expect.stringContains e.Message "1.5·1 + 0.2 = 1.7" "says where it went"
            Expect.stringContains e.Message "does not extrapolate" "and why it is refused"
            close "extrapolating when said" [| 1.0; 1.7 |] (fst (Basis.transformedAt { custom with Extrapolates = true } 1.5 0.2 1.0))
        }
    ]
