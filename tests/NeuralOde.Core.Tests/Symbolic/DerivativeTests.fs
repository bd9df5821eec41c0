/// The symbolic derivatives against autograd (float64) on random well-shaped expressions: every variable's
/// vector–Jacobian product, and the Jacobian–vector product against the directional derivative autograd gives
/// through the VJP (⟨v, J t⟩ = ⟨Jᵀ v, t⟩). Plus the interpreter against TorchSharp's own operations, simplification
/// that keeps values, and rendering of the paper's worked example.
module NeuralOde.Tests.Symbolic.DerivativeTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

/// z [N, d], w [d, d], u [2d, d], b scalar: the variables of the random expressions, all shaped [N, d] at the top.
let private z, w, u, b = Expr.tensor "z", Expr.tensor "w", Expr.tensor "u", Expr.scalar "b"

/// Expressions of shape [N, d] with values kept finite: denominators and logarithms get positive arguments, and
/// exponentials bounded ones.
let rec private expression (depth: int) : Gen<Expr> =
    let leaf = Gen.elements [ z; Expr.matmul z w; Mul(b, z); Add(z, b) ]
    if depth <= 0 then leaf
    else
        let sub = expression (depth - 1)
        Gen.oneof [
            leaf
            Gen.map2 (fun x y -> Add(x, y)) sub sub
            Gen.map2 (fun x y -> Sub(x, y)) sub sub
            Gen.map2 (fun x y -> Mul(x, y)) sub sub
            Gen.map2 (fun x y -> Div(x, Add(Const 2.0, Expr.sigmoid y))) sub sub
            Gen.map Neg sub
            Gen.map2 (fun x p -> Pow(Expr.sigmoid x, p)) sub (Gen.elements [ 2.0; 3.0; 0.5 ])
            Gen.map2 (fun f x -> Apply(f, x)) (Gen.elements [ Tanh; Sigmoid; Softplus; Sin; Cos ]) sub
            Gen.map (fun x -> Expr.exp (Expr.tanh x)) sub
            Gen.map (fun x -> Expr.log (Add(Const 2.0, Expr.tanh x))) sub
            Gen.map (fun x -> Expr.matmul x w) sub
            Gen.map (fun x -> Expr.matmul x (Expr.transpose w)) sub
            Gen.map (fun x -> Mul(b, x)) sub
            Gen.map (fun x -> Add(Mul(Expr.sum x, Const 0.1), z)) sub
            // Concatenation along the features (a state beside data) and along the batch, sums over one axis
            // spread back, and a slice of a concatenation.
            Gen.map2 (fun x y -> Expr.matmul (Expr.concat [ x; y ] 1) u) sub sub
            Gen.map2 (fun x y -> Expr.matmul (Expr.concat [ x; Expr.tanh y ] -1) u) sub sub
            Gen.map (fun x -> Add(z, Spread(Expr.sumAxis x 1, 1, x))) sub
            Gen.map (fun x -> Mul(x, Spread(Expr.sumAxis (Expr.tanh x) 0, 0, x))) sub
            Gen.map2 (fun x y -> Part(Mul(Const 2.0, Expr.concat [ x; Expr.sin y ] 0), [ x; Expr.sin y ], 1, 0)) sub sub
            // The matrix exponential of a scaled square matrix (its VJP and JVP are Fréchet derivatives).
            Gen.map (fun x -> Expr.matmul x (Expr.matrixExp (Mul(Expr.tanh b, w)))) sub ]

type private Case = { Expression: Expr; Seed: int; Batch: int; Dim: int }

let private caseGen =
    gen {
        let! depth = Gen.choose (1, 4)
        let! e = expression depth
        let! seed = Gen.choose (0, 1_000_000)
        let! batch = Gen.choose (1, 4)
        let! dim = Gen.choose (1, 3)
        return { Expression = e; Seed = seed; Batch = batch; Dim = dim }
    }

type private Arbitraries =
    static member Case() = Arb.fromGen caseGen

let private config = { FsCheckConfig.defaultConfig with maxTest = 150; arbitrary = [ typeof<Arbitraries> ] }

/// Values of z, w, b, a cotangent v and tangents, from the case's seed.
let private bindings (c: Case) =
    let g = torch.Generator(uint64 c.Seed)
    let n, d = int64 c.Batch, int64 c.Dim
    let draw (shape: int64[]) = torch.randn(shape, dtype = torch.float64, generator = g) * 0.7
    Map [ "z", draw [| n; d |]; "w", draw [| d; d |]; "u", draw [| 2L * d; d |]; "b", draw [||] ],
    draw [| n; d |],
    Map [ "z", draw [| n; d |]; "w", draw [| d; d |]; "u", draw [| 2L * d; d |]; "b", draw [||] ]

let private close (name: string) (expected: torch.Tensor) (actual: torch.Tensor) =
    let e, a = Tensors.toArray expected, Tensors.toArray actual
    Expect.equal a.Length e.Length $"{name}: sizes"
    let scale = 1.0 + (e |> Array.map abs |> Array.fold max 0.0)
    let worst = Array.map2 (fun x y -> abs (x - y)) e a |> Array.fold max 0.0
    Expect.isLessThan worst (1e-10 * scale) $"{name}: largest difference {worst:E2}"

[<Tests>]
let tests =
    testList "Symbolic/derivatives" [
        testPropertyWithConfig config "every variable's symbolic VJP equals autograd's" <| fun (c: Case) ->
            use scope = torch.NewDisposeScope()
            let values, v, _ = bindings c
            let leaves = values |> Map.map (fun _ t -> t.detach().requires_grad_(true))
            use y = Evaluate.evaluate leaves c.Expression
            use loss = (y * v).sum()
            let names = [ "z"; "w"; "u"; "b" ] |> List.filter (fun n -> Expr.variables c.Expression |> List.exists (fun (m, _) -> m = n))
            let grads = torch.autograd.grad([| loss |], names |> List.map (fun n -> leaves[n]) |> Array.ofList)
            let symbolic = Derivative.vjp c.Expression (Expr.tensor "v")
            let environment = values |> Map.add "v" v
            for name, expected in List.zip names (List.ofSeq grads) do
                use actual = Evaluate.evaluate environment symbolic[name]
                close $"d/d{name} of {Render.text c.Expression}" expected actual
        testPropertyWithConfig config "the symbolic JVP paired with v equals autograd's VJP paired with the tangents: ⟨v, J t⟩ = Σ ⟨Jᵀ v, t⟩" <| fun (c: Case) ->
            use scope = torch.NewDisposeScope()
            let values, v, tangents = bindings c
            let tangentNames = tangents |> Map.map (fun name _ -> if name = "b" then Expr.scalar ("t_" + name) else Expr.tensor ("t_" + name))
            let environment =
                tangents |> Map.fold (fun acc name t -> acc |> Map.add ("t_" + name) t) (values |> Map.add "v" v)
            use jt = Evaluate.evaluate environment (Derivative.jvp c.Expression tangentNames)
            let left = (v * jt).sum().ToDouble()
            // Autograd's VJP paired with the tangents.
            let leaves = values |> Map.map (fun _ t -> t.detach().requires_grad_(true))
            use y = Evaluate.evaluate leaves c.Expression
            use loss = (y * v).sum()
            let names = Expr.variables c.Expression |> List.map fst
            let grads = torch.autograd.grad([| loss |], names |> List.map (fun n -> leaves[n]) |> Array.ofList)
            let right = List.zip names (List.ofSeq grads) |> List.sumBy (fun (name, g) -> (g * tangents[name]).sum().ToDouble())
            Expect.floatClose { absolute = 1e-10; relative = 1e-10 } left right $"for {Render.text c.Expression}"
        testPropertyWithConfig config "compiled evaluation (shared subexpressions) equals the interpreter, derivatives included" <| fun (c: Case) ->
            use scope = torch.NewDisposeScope()
            let values, v, _ = bindings c
            let environment = values |> Map.add "v" v
            for e in c.Expression :: (Derivative.vjp c.Expression (Expr.tensor "v") |> Map.toList |> List.map snd) do
                let compiled = Compile.compile e
                Expect.equal compiled.Operations (Expr.size e) "one operation per distinct subexpression"
                use interpreted = Evaluate.evaluate environment e
                use fast = compiled.Invoke environment
                close "compiled" interpreted fast
        testPropertyWithConfig config "simplification keeps the value" <| fun (c: Case) ->
            use scope = torch.NewDisposeScope()
            let values, _, _ = bindings c
            let symbolic = Derivative.vjp c.Expression (Expr.tensor "z")   // unsimplified inputs to simplify below
            use original = Evaluate.evaluate (values |> Map.add "v" values["z"]) c.Expression
            use simplified = Evaluate.evaluate values (Simplify.simplify c.Expression)
            close "simplified" original simplified
            Expect.isGreaterThan symbolic.Count 0 "some variable is used"
        test "derivatives are compact: d/dz of tanh(z W) ⊙ v is v ⊙ (1 − tanh(z W)²) Wᵀ" {
            let f = Expr.tanh (Expr.matmul z w)
            let g = Derivative.vjp f (Expr.tensor "v")
            Expect.equal (Render.text g["z"]) "(v .* (1 - tanh(z @ w)^2)) @ w'" "d/dz"
            Expect.equal (Render.text g["w"]) "z' @ (v .* (1 - tanh(z @ w)^2))" "d/dw"
            Expect.equal (Render.latex g["z"]) "\\left(v \\odot \\left(1 - \\tanh\\left(z w\\right)^{2}\\right)\\right) w^\\top" "LaTeX"
        }
        test "LaTeX escapes the special characters of names: braces stay balanced and no % comments out the rest" {
            let names = [ "a}b"; "c{"; "rate%"; "x\\y"; "p$"; "u&v"; "n#"; "k_1"; "e^2x"; "t~" ]
            let e = names |> List.map Expr.tensor |> List.reduce (fun a b -> Add(a, b))
            let latex = Render.latex e
            // Walk the text as TeX reads it: a backslash starts a control word (letters) or symbol (one character).
            let mutable depth, i, unescaped = 0, 0, []
            while i < latex.Length do
                match latex[i] with
                | '\\' when i + 1 < latex.Length && Char.IsLetter latex[i + 1] ->
                    i <- i + 1
                    while i + 1 < latex.Length && Char.IsLetter latex[i + 1] do i <- i + 1
                | '\\' -> i <- i + 1
                | '{' -> depth <- depth + 1
                | '}' ->
                    depth <- depth - 1
                    Expect.isGreaterThanOrEqual depth 0 $"a closing brace without an opening one at {i} in {latex}"
                | '%' | '$' | '&' | '#' | '~' as c -> unescaped <- c :: unescaped
                | _ -> ()
                i <- i + 1
            Expect.equal depth 0 $"balanced braces in {latex}"
            Expect.isEmpty unescaped $"no unescaped special characters in {latex}"
            Expect.equal (Render.latex (Expr.tensor "a}b")) "\\mathrm{a\\}b}" "a}b"
            Expect.equal (Render.latex (Expr.tensor "rate%")) "\\mathrm{rate\\%}" "rate%"
            Expect.equal (Render.latex (Expr.tensor "c{")) "\\mathrm{c\\{}" "c{"
            Expect.equal (Render.latex (Expr.tensor "x\\y")) "\\mathrm{x\\backslash{}y}" "x\\y"
            Expect.equal (Render.latex (Expr.tensor "theta1")) "\\theta_{1}" "a Greek name keeps its letter"
        }
        test "basis functions in expressions: the depth derivative of Σ z ⊙ ψ_j(s) is Σ z ⊙ ψ′_j(s) (central differences)" {
            let basis = NeuralOde.Core.Basis.legendre 4 1.0
            let s = Expr.scalar "s"
            let e = Expr.sum (Mul(z, Mul(Expr.psi basis 2 s, Expr.psi basis 3 s)))
            let ds = (Derivative.vjp e (Const 1.0))["s"]
            use zv = torch.tensor([| 0.3; -1.1; 2.0 |], dtype = torch.float64)
            let at (depth: float) (expr: Expr) =
                use sv = torch.tensor(depth, dtype = torch.float64)
                use v = Evaluate.evaluate (Map [ "z", zv; "s", sv ]) expr
                v.ToDouble()
            let h = 1e-6
            let central = (at (0.4 + h) e - at (0.4 - h) e) / (2.0 * h)
            Expect.floatClose { absolute = 1e-7; relative = 1e-7 } (at 0.4 ds) central "d/ds"
            // The scalar s receives the summed cotangent: Σz · (ψ₃ ψ′₂ + ψ₂ ψ′₃), the product rule.
            Expect.equal (Render.text ds) "sum(z) .* psi_3(s) .* psi'_2(s) + sum(z) .* psi_2(s) .* psi'_3(s)" "product rule, rendered"
            Raises.raises<ArgumentOutOfRangeException> (fun () -> Expr.psi basis 4 s |> ignore) |> ignore
        }
        test "compilation shares what a derivative repeats: tanh(z W) once in d/dz and d/dW together" {
            let f = Expr.tanh (Expr.matmul z w)
            let g = Derivative.vjp f (Expr.tensor "v")
            let both = Add(Expr.sum g["z"], Expr.sum g["w"])
            let compiled = Compile.compile both
            // Written out as a tree the sum has 31 nodes; shared, 18 distinct ones (measured; 4 and 2 of them the
            // reductions of z's and W's cotangents to their shapes, which cost nothing when no operand was broadcast).
            let rec treeSize e = 1 + (Expr.children e |> List.sumBy treeSize)
            Expect.equal (compiled.Operations, treeSize both) (18, 31) "operations, tree size"
        }
        test "the interpreter names an unbound variable and a scalar bound to a tensor" {
            use t = torch.ones(2L, dtype = torch.float64)
            let e = Raises.raises<ArgumentException> (fun () -> Evaluate.evaluate (Map [ "z", t ]) (Add(z, Expr.tensor "q")) |> ignore)
            Expect.stringContains e.Message "'q'" "names it"
            let e = Raises.raises<ArgumentException> (fun () -> Evaluate.evaluate (Map [ "b", t ]) b |> ignore)
            Expect.stringContains e.Message "0-dim" "says what to give"
        }
    ]
