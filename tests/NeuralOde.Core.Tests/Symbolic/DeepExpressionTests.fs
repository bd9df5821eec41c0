/// Expressions nested far deeper than any field is written — sin applied 10,000 times, a sum of 200,000 terms — through
/// every pass of both assemblies: derivatives (VJP and JVP), simplification, evaluation, compilation, rendering and
/// the symbolic field. These overflowed the stack (which ends the process) before the passes took their operands
/// from an explicit stack; each scenario runs in a child process (Support/Child) so that a regression fails the test
/// instead of killing the runner, and on a thread with a 1 MB stack, smaller than .NET's default for new threads.
module NeuralOde.Tests.Symbolic.DeepExpressionTests

open System
open System.Threading
open Expecto
open TorchSharp
open NeuralOde.Core.Symbolic
open NeuralOde.Tests.Support

let private nesting = 10_000
let private terms = 200_000
let private x0 = 0.5

/// sin∘…∘sin (x0) and its derivative Π_k cos(x_k), in doubles.
let private nestedSinReference () =
    let mutable x, slope = x0, 1.0
    for _ in 1 .. nesting do
        slope <- slope * cos x
        x <- sin x
    x, slope

/// Runs `check` on a thread with a 1 MB stack; passes when it returns true without an exception.
let private onSmallStack (check: unit -> bool) : int =
    let mutable verdict = Child.CheckFailed
    let worker =
        Thread((fun () ->
            try
                let watch = Diagnostics.Stopwatch.StartNew()
                if check () then verdict <- Child.Passed
                printfn "took %.1f s" watch.Elapsed.TotalSeconds
            with e -> printfn "raised %s: %s" (e.GetType().FullName) e.Message), 1024 * 1024)
    worker.Start()
    worker.Join()
    verdict

let private close (what: string) (actual: float) (expected: float) =
    let ok = abs (actual - expected) <= 1e-9 * max 1.0 (abs expected)
    if not ok then printfn "%s: %.17g, expected %.17g" what actual expected
    ok

let private scalarValue (t: torch.Tensor) = use t = t in t.ToDouble()

/// sin applied 10,000 times in the F# API: VJP, JVP, evaluation, compilation, text, LaTeX and a symbolic field.
let nestedSinFSharp () =
    onSmallStack (fun () ->
        let value, slope = nestedSinReference ()
        let x = Expr.scalar "x"
        let e = Seq.fold (fun e _ -> Expr.sin e) x [ 1 .. nesting ]
        use at = torch.tensor(x0, dtype = torch.float64)
        let environment = Map [ "x", at ]
        let gradient = (Derivative.vjp e (Const 1.0))["x"]
        let tangent = Derivative.jvp e (Map [ "x", Const 1.0 ])
        let compiled = Compile.compile e
        let rendered = (Render.text e).Length > nesting && (Render.latex e).Length > nesting
        let z, w = Expr.tensor "z", Expr.tensor "w"
        use field = SymbolicField.create (Seq.fold (fun e _ -> Expr.sin e) (Expr.matmul z w) [ 1 .. nesting ]) "z" [ "w", torch.eye(2L, dtype = torch.float64) ] None None
        use state = Tensors.f64m [| [| x0; x0 |] |]
        use forward = field.Evaluate(0.0, state, null)
        close "the value" (scalarValue (Evaluate.evaluate environment e)) value
        && close "the compiled value" (scalarValue (compiled.Invoke environment)) value
        && close "the VJP" (scalarValue (Evaluate.evaluate environment gradient)) slope
        && close "the JVP" (scalarValue (Evaluate.evaluate environment tangent)) slope
        && close "the field" (forward[0L, 0L].ToDouble()) value
        && rendered)

/// sin applied 10,000 times through the C# facade: Vjp, Jvp, Evaluate, ToString, ToLatex and SymbolicField.Create.
let nestedSinCSharp () =
    onSmallStack (fun () ->
        let value, slope = nestedSinReference ()
        let x = NeuralOde.Symbolic.Scalar "x"
        let e = Seq.fold (fun e _ -> NeuralOde.Symbolic.Sin e) x [ 1 .. nesting ]
        use at = torch.tensor(x0, dtype = torch.float64)
        let environment = readOnlyDict [ "x", at ]
        let gradient = e.Vjp(NeuralOde.SymbolicExpression.op_Implicit 1.0)["x"]
        let tangent = e.Jvp(readOnlyDict [ "x", NeuralOde.SymbolicExpression.op_Implicit 1.0 ])
        let rendered = e.ToString().Length > nesting && e.ToLatex().Length > nesting
        let z = NeuralOde.Symbolic.Tensor "z"
        let f = Seq.fold (fun e _ -> NeuralOde.Symbolic.Sin e) (NeuralOde.Symbolic.MatMul(z, NeuralOde.Symbolic.Tensor "w")) [ 1 .. nesting ]
        use w = torch.eye(2L, dtype = torch.float64)
        use field = NeuralOde.SymbolicField.Create(f, "z", readOnlyDict [ "w", w ])
        close "the value" (scalarValue (e.Evaluate environment)) value
        && close "the VJP" (scalarValue (gradient.Evaluate environment)) slope
        && close "the JVP" (scalarValue (tangent.Evaluate environment)) slope
        && rendered)

/// Σ_{i<200,000} i·x: the VJP with respect to x evaluates to Σ i (F#), the C# facade's Vjp and both texts.
let longSum () =
    onSmallStack (fun () ->
        let x = Expr.tensor "x"
        let e = Seq.fold (fun e i -> Add(e, Mul(Const(float i), x))) (Mul(Const 0.0, x)) [ 1 .. terms - 1 ]
        let gradient = (Derivative.vjp e (Expr.tensor "d"))["x"]
        use at = torch.ones([| 2L |], dtype = torch.float64)
        use g = Evaluate.evaluate (Map [ "x", at; "d", at ]) gradient
        let y = NeuralOde.Symbolic.Tensor "x"
        let term (i: int) = NeuralOde.SymbolicExpression.op_Implicit (float i) * y
        let sum = Seq.fold (fun (e: NeuralOde.SymbolicExpression) i -> e + term i) (term 0) [ 1 .. terms - 1 ]
        let gradient2 = sum.Vjp(NeuralOde.Symbolic.Tensor "d")["x"]
        close "the VJP" (g[0L].ToDouble()) (float terms * float (terms - 1) / 2.0)
        && (Render.text e).Length > terms
        && gradient2.ToString().Length > terms)

/// The scenarios by name (registered in Reliability/ChildScenarios).
let scenarios : (string * (unit -> int)) list =
    [ "deep-nested-sin-fsharp", nestedSinFSharp
      "deep-nested-sin-csharp", nestedSinCSharp
      "deep-long-sum", longSum ]

let private inChild (scenario: string) (what: string) =
    test what {
        let outcome = Child.run scenario (TimeSpan.FromSeconds 300.0)
        Expect.isFalse outcome.TimedOut $"the child hung:\n{outcome.Output}"
        Expect.equal outcome.ExitCode Child.Passed $"exit code {outcome.ExitCode} (134 = aborted, e.g. a stack overflow):\n{outcome.Output}"
    }

[<Tests>]
let tests =
    testList "Symbolic/deep expressions" [
        inChild "deep-nested-sin-fsharp" "sin nested 10,000 deep: VJP, JVP, evaluation, compilation, rendering and a symbolic field (F#)"
        inChild "deep-nested-sin-csharp" "sin nested 10,000 deep: Vjp, Jvp, Evaluate, ToString, ToLatex and SymbolicField.Create (C#)"
        inChild "deep-long-sum" "a sum of 200,000 terms: its VJP and its text in both APIs"
    ]
