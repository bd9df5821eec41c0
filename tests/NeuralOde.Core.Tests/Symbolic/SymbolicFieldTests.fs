/// Symbolic fields in the library's solves: the adjoint sensitivities with the compiled symbolic vector–Jacobian
/// products against the same adjoints with autograd's (float64, same solver: equal to rounding), a proof that the
/// symbolic products are the ones used (a forward hidden from autograd still gets the right gradients), data and
/// depth variables, the exact trace inside a continuous normalizing flow, and the errors.
module NeuralOde.Tests.Symbolic.SymbolicFieldTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

let private z, x, s = Expr.tensor "z", Expr.tensor "x", Expr.scalar "s"
let private w1, b1, w2 = Expr.tensor "w1", Expr.tensor "b1", Expr.tensor "w2"

/// A data-controlled, depth-variant MLP field: tanh([z, x] W1 + b1) W2 ⊙ (1 + s/2) − z/4.
let private mlp =
    Sub(Mul(Expr.matmul (Expr.tanh (Add(Expr.matmul (Expr.concat [ z; x ] 1) w1, b1))) w2, Add(Const 1.0, Mul(Const 0.5, s))), Mul(Const 0.25, z))

let private fieldWith (seed: uint64) =
    use g = torch.Generator(seed)
    let draw (shape: int64[]) = torch.randn(shape, dtype = torch.float64, generator = g) * 0.5
    SymbolicField.create mlp "z" [ "w1", draw [| 4L; 8L |]; "b1", draw [| 8L |]; "w2", draw [| 8L; 2L |] ] (Some "s") (Some "x")

let private tight = StepControl.adaptive 1e-9 1e-11

/// dL/dx0 and dL/dθ of L = Σ z(1)² + ∫ Σ z² ds by `sensitivity`, for `problem`.
let private gradients (problem: OdeProblem) (sensitivity: Sensitivity) =
    let x0 = problem.X0
    let loss: IntegralLoss = fun _ state -> state.square().sum()
    use solution = Ode.solveWith sensitivity (problem |> OdeProblem.withIntegralLoss loss) Solvers.dopri5 tight
    use total = solution.Final.square().sum() + solution.Integral.Value
    // SafeAutograd: a failure inside the adjoint's backward is raised here instead of aborting the process.
    use seed = torch.ones_like(total)
    let g = Internal.SafeAutograd.grad [| total |] (Array.append [| x0 |] problem.Parameters) [| seed |] false
    g |> Seq.map Tensors.toArray |> Array.ofSeq

[<Tests>]
let tests =
    testList "Symbolic/field" [
        test "the adjoints with compiled symbolic VJPs equal the adjoints with autograd's VJPs" {
            use field = fieldWith 5UL
            use x0 = torch.randn([| 6L; 2L |], dtype = torch.float64).requires_grad_(true)
            use data = torch.randn([| 6L; 2L |], dtype = torch.float64)
            let symbolic = field.Problem(x0, [| 0.0; 1.0 |], data)
            let byAutograd = { symbolic with VectorJacobianProduct = None }
            for sensitivity in [ Sensitivity.adjoint; Sensitivity.interpolatedAdjoint ] do
                let expected, actual = gradients byAutograd sensitivity, gradients symbolic sensitivity
                for e, a in Array.zip expected actual do
                    Expect.isLessThan (Tensors.relativeError e a) 1e-10 $"{sensitivity}: symbolic = autograd VJPs"
            // And both agree with autograd through the solver (discretise-then-optimise) to the tolerance.
            let direct = gradients byAutograd Sensitivity.Autograd
            for e, a in Array.zip direct (gradients symbolic Sensitivity.adjoint) do
                Expect.isLessThan (Tensors.relativeError e a) 1e-6 "adjoint ≈ autograd through the solver"
        }
        test "the symbolic products are the ones the adjoint uses: a forward hidden from autograd still gets its gradients" {
            use field = fieldWith 6UL
            use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64).requires_grad_(true)
            use data = torch.randn([| 3L; 2L |], dtype = torch.float64)
            let symbolic = field.Problem(x0, [| 0.0; 1.0 |], data)
            // Detached output: autograd's VJPs through this forward would all be zero.
            let hidden = { symbolic with VectorField = fun t state -> (symbolic.VectorField t state).detach() }
            let expected = gradients symbolic Sensitivity.adjoint
            let actual = gradients hidden Sensitivity.adjoint
            for e, a in Array.zip expected actual do
                Expect.isLessThan (Tensors.relativeError e a) 1e-12 "same gradients without an autograd graph of f"
            Expect.isGreaterThan (actual[1] |> Array.map abs |> Array.max) 1e-3 "and they are not zero"
        }
        test "the module evaluates like its expression and registers its parameters by name" {
            use field = fieldWith 7UL
            let names = field.named_parameters() |> Seq.map (fun struct (n, _) -> n) |> List.ofSeq
            Expect.equal names [ "w1"; "b1"; "w2" ] "parameters"
            use zv = torch.randn([| 5L; 2L |], dtype = torch.float64)
            use xv = torch.randn([| 5L; 2L |], dtype = torch.float64)
            let f = ModuleField.create field xv
            use viaModule = f 0.3 zv
            let env = Map [ "z", zv; "x", xv; "s", torch.tensor(0.3, dtype = torch.float64)
                            "w1", field.Parameters[0]; "b1", field.Parameters[1]; "w2", field.Parameters[2] ]
            use direct = Evaluate.evaluate env mlp
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray direct) (Tensors.toArray viaModule)) 1e-15 "same values"
        }
        test "a flow with a symbolic field takes the closed-form exact trace: log p equals autograd's exact trace, gradients too" {
            let field () =
                use g = torch.Generator(11UL)
                let draw (shape: int64[]) = torch.randn(shape, dtype = torch.float64, generator = g) * 0.5
                SymbolicField.create (Expr.matmul (Expr.tanh (Add(Expr.matmul z w1, b1))) w2) "z"
                    [ "w1", draw [| 2L; 16L |]; "b1", draw [| 16L |]; "w2", draw [| 16L; 2L |] ] None None
            use symbolic = field ()
            use hidden = field ()
            // Inside a Sequential the closed form is hidden: the flow falls back to autograd's d passes.
            use wrapped = torch.nn.Sequential(hidden)
            use x0 = torch.randn([| 64L; 2L |], dtype = torch.float64)
            let logp (m: torch.nn.Module<torch.Tensor, torch.Tensor>) =
                use flow = new Cnf(m, 2, Exact, Solvers.dopri5, tight)
                let lp = flow.LogProbability(x0)
                let mean = lp.mean()
                let grads = torch.autograd.grad([| mean |], m.parameters() |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq)
                Tensors.toArray lp, grads |> Seq.map Tensors.toArray |> Array.ofSeq
            let lpS, gS = logp symbolic
            let lpA, gA = logp wrapped
            Expect.isGreaterThan symbolic.TraceEvaluations 0 "the flow took the closed-form trace"
            Expect.equal hidden.TraceEvaluations 0 "inside a Sequential it did not"
            Expect.isLessThan (Tensors.relativeError lpA lpS) 1e-10 "log p"
            for e, a in Array.zip gA gS do Expect.isLessThan (Tensors.relativeError e a) 1e-9 "d log p / dθ"
        }
        test "bad inputs are refused by name: an unbound variable, a parameter the field does not use, missing data, a VJP of the wrong shape" {
            use w = torch.ones([| 2L; 2L |], dtype = torch.float64)
            let e = Raises.raises<ArgumentException> (fun () -> SymbolicField.create (Expr.matmul z (Expr.tensor "q")) "z" [ "w", w ] None None |> ignore)
            Expect.stringContains e.Message "'w'" "the unused parameter"
            let e = Raises.raises<ArgumentException> (fun () -> SymbolicField.create (Expr.matmul z (Expr.tensor "q")) "z" [] None None |> ignore)
            Expect.stringContains e.Message "'q'" "the unbound variable"
            use field = fieldWith 8UL
            use x0 = torch.randn([| 3L; 2L |], dtype = torch.float64)
            let e = Raises.raises<ArgumentException> (fun () -> field.Evaluate(0.0, x0, null) |> ignore)
            Expect.stringContains e.Message "'x'" "the data variable"
            let good = field.Problem(x0.requires_grad_(true), [| 0.0; 1.0 |], x0.detach())
            let bad = { good with VectorJacobianProduct = Some { good.VectorJacobianProduct.Value with Apply = (fun _ state _ -> state.sum(0L), [||]); WithValue = None } }
            use solution = Ode.solveWith Sensitivity.adjoint bad Solvers.dopri5 tight
            use total = solution.Final.square().sum()
            // Ode.backward raises the backward solve's own exception (libtorch's engine cannot carry it).
            let e = Raises.raises<exn> (fun () -> Ode.backward total)
            let text = e.ToString()
            Expect.stringContains text "vectorJacobianProduct" "names the argument"
            Expect.stringContains text "t = " "and the time"
        }
    ]
