/// A property-based malformed-input suite: FsCheck draws calls of the public entry points of both assemblies (the
/// F# core and the C# facade) with bad (and some
/// good) arguments — NaN/Inf/zero/negative/huge numbers, null/empty/unordered time grids, null/disposed/integer/0-dim/
/// empty/NaN tensors, vector fields that return null, the wrong shape or dtype, throw, modify their input, return a
/// disposed tensor or NaN — and classifies each outcome. Returning, or raising a typed exception (ArgumentException
/// and its kin, ObjectDisposedException, OdeSolveException, InvalidOperationException) passes; an untyped exception
/// (NullReferenceException, libtorch's ExternalException, IndexOutOfRange, ...) fails; an abort or a hang ends the
/// child process this runs in (Support/Child), which fails the parent's test.
module NeuralOde.Tests.Reliability.MalformedInputs

open System
open System.Threading.Tasks
open FsCheck
open FsCheck.FSharp
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets

type Tensor = torch.Tensor

/// One call: what it is (FsCheck prints it for a failing case) and how to make it.
type Case =
    { Name: string
      Run: unit -> unit }
    override c.ToString() = c.Name

let private numbers = [ nan; infinity; -infinity; 0.0; -0.0; -1.0; 1e308; 1e-320; Double.Epsilon; 1e-3; 0.5; 1.0; 10.0 ]
let private counts = [ Int32.MinValue; -1; 0; 1; 2; 7; Int32.MaxValue ]
let private grids: (string * float[]) list =
    [ "null", null; "[]", [||]; "[0]", [| 0.0 |]; "[0;0]", [| 0.0; 0.0 |]; "[0;NaN]", [| 0.0; nan |]; "[1;0;2]", [| 1.0; 0.0; 2.0 |]
      "[-1e308;1e308]", [| -1e308; 1e308 |]; "[0;1e-320]", [| 0.0; 1e-320 |]; "[0;1]", [| 0.0; 1.0 |]; "[1;0]", [| 1.0; 0.0 |]
      "[0;Inf]", [| 0.0; infinity |]; "[0;.5;.5;1]", [| 0.0; 0.5; 0.5; 1.0 |]; "[0;1e12]", [| 0.0; 1e12 |] ]

/// Tensors by kind; each call makes a fresh one (float64 [2, 2] unless the kind says otherwise).
let private tensors: (string * (unit -> Tensor)) list =
    [ "null", (fun () -> null)
      "disposed", (fun () -> let t = torch.ones([| 2L; 2L |], dtype = torch.float64) in t.Dispose(); t)
      "int64", (fun () -> torch.ones([| 2L; 2L |], dtype = torch.int64))
      "0-dim", (fun () -> torch.tensor(1.0, dtype = torch.float64))
      "empty [0,2]", (fun () -> torch.zeros([| 0L; 2L |], dtype = torch.float64))
      "NaN", (fun () -> torch.full([| 2L; 2L |], Scalar.op_Implicit nan, dtype = torch.float64))
      "float16", (fun () -> torch.ones([| 2L; 2L |], dtype = torch.float16))
      "float32 [2,2]", (fun () -> torch.ones([| 2L; 2L |], dtype = torch.float32))
      "[2,2]", (fun () -> torch.ones([| 2L; 2L |], dtype = torch.float64))
      "requires grad [2,2]", (fun () -> torch.ones([| 2L; 2L |], dtype = torch.float64).requires_grad_(true))
      "huge", (fun () -> torch.full([| 2L; 2L |], Scalar.op_Implicit 1e300, dtype = torch.float64))
      "[3]", (fun () -> torch.ones([| 3L |], dtype = torch.float64)) ]

/// Vector fields by kind.
let private fields: (string * VectorField) list =
    [ "good", (fun _ x -> x.neg())
      "returns null", (fun _ _ -> null)
      "wrong shape", (fun _ x -> torch.zeros([| 5L |], dtype = x.dtype))
      "wrong dtype", (fun _ x -> x.to_type(torch.float32).neg())
      "throws", (fun _ _ -> failwith "the field failed")
      "in place", (fun _ x -> x.neg_())
      "disposed result", (fun _ x -> let d = x.neg() in d.Dispose(); d)
      "NaN", (fun _ x -> x * nan)
      "returns its input", (fun _ x -> x)
      "blows up", (fun _ x -> x.exp() * 1e10) ]

let private controls: (string * (unit -> StepControl)) list =
    [ for dt in numbers do
          yield $"Fixed({dt})", (fun () -> StepControl.Fixed(dt, StepControl.defaultFixedBudget))
      for n in counts do
          yield $"Steps({n})", (fun () -> StepControl.Steps(n, StepControl.defaultFixedBudget))
          yield $"Fixed(0.1, budget {n})", (fun () -> StepControl.Fixed(0.1, n))
      for v in numbers do
          yield $"Adaptive(rtol {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with RTol = v })
          yield $"Adaptive(atol {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with ATol = v })
          yield $"Adaptive(safety {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with Safety = v })
          yield $"Adaptive(pCoeff {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with PCoeff = v })
          yield $"Adaptive(iCoeff {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with ICoeff = v })
          yield $"Adaptive(minFactor {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with MinFactor = v })
          yield $"Adaptive(maxFactor {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with MaxFactor = v })
          yield $"Adaptive(initialStep {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with InitialStep = Some v })
          yield $"Adaptive(minStep {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with MinStep = v })
          yield $"Adaptive(maxStep {v})", (fun () -> StepControl.Adaptive { StepControl.defaults with MaxStep = v })
      for n in counts do
          yield $"Adaptive(maxSteps {n})", (fun () -> StepControl.Adaptive { StepControl.defaults with MaxSteps = n }) ]

let private sensitivities: (string * Sensitivity) list =
    // Every element yielded explicitly: in a list with a `for`, bare elements are evaluated and discarded (FS3221),
    // which left only the checkpointed adjoints here until issue 26's build showed the warning.
    [ yield "autograd", Sensitivity.Autograd
      yield "adjoint", Sensitivity.adjoint
      yield "interpolated", Sensitivity.interpolatedAdjoint
      for n in counts do
          yield $"adjoint(checkpoints {n})", Sensitivity.Adjoint { Sensitivity.defaultOptions with Checkpoints = n }
      yield "adjoint(backward euler, adaptive)", Sensitivity.Adjoint { Sensitivity.defaultOptions with Solver = Some Solvers.euler } ]

let private pick (xs: (string * 'a) list) = Gen.elements xs

/// Disposes what a case made, whatever happened.
let private cleanup (ts: Tensor list) = for t in ts do if not (isNull t) && not t.IsInvalid then t.Dispose()

/// A solve of every kind: Ode.solveWith / trySolve, then a backward pass when something requires grad.
let private solveCase =
    gen {
        let! fName, f = pick fields
        let! xName, x = pick tensors
        let! tName, times = pick grids
        let! cName, control = pick controls
        let! sName, sensitivity = pick sensitivities
        let! solver = Gen.elements Solvers.all
        let! tryIt = Gen.elements [ false; true ]
        let! withLoss = Gen.elements [ false; true ]
        let entry = if tryIt then "trySolve" else "solveWith"
        return
            { Name = $"{entry} {sName} {solver.Name} {cName} f={fName} x0={xName} times={tName} loss={withLoss}"
              Run = fun () ->
                use scope = torch.NewDisposeScope()
                let x0 = x ()
                let w = torch.ones([| 1L |], dtype = torch.float64).requires_grad_(true)
                let f' = if fName = "good" then (fun t v -> f t v * w) else f
                let problem =
                    OdeProblem.create f' x0 times |> OdeProblem.withParameters [ w ]
                    |> fun p -> if withLoss then OdeProblem.withIntegralLoss (fun _ v -> v.square().sum()) p else p
                let solution =
                    if tryIt then Ode.trySolveWith sensitivity problem solver (control ())
                    else Ode.solveWith sensitivity problem solver (control ())
                use _ = solution
                if solution.States.requires_grad then Ode.backward (solution.States.sum()) }
    }

let private spansCase =
    gen {
        let! xName, x = pick tensors
        let! t0Name, t0 = pick tensors
        let! t1Name, t1 = pick tensors
        let! gName, fractions = pick grids
        return
            { Name = $"Spans.solve x0={xName} t0={t0Name} t1={t1Name} fractions={gName}"
              Run = fun () ->
                use scope = torch.NewDisposeScope()
                Ode.solveWith Sensitivity.Autograd (Spans.problem (fun t v -> v.neg()) (x ()) (t0 ()) (t1 ()) fractions []) Solvers.rk4 (StepControl.steps 4)
                |> fun s -> (s :> IDisposable).Dispose() }
    }

let private theoremCase =
    gen {
        let! xName, x = pick tensors
        let! gName, terminal = pick tensors
        let! dName, depths = pick grids
        let! a = Gen.elements numbers
        let! b = Gen.elements numbers
        return
            { Name = $"Theorem 1 x0={xName} terminal={gName} depths={dName} span=({a}, {b})"
              Run = fun () ->
                use scope = torch.NewDisposeScope()
                use layer = new GalLinear(2L, 2L, Basis.fourier 1 1.0, torch.float64)
                let field: VectorField = fun s v -> layer.forward(v, s)
                InfiniteDimensionalGradient.along field (fun () -> layer.LastWeights) (x ()) (a, b) (terminal ()) None depths Solvers.rk4 (StepControl.steps 4)
                |> ignore }
    }

let private modelCase =
    gen {
        let! n = Gen.elements counts
        let! m = Gen.elements counts
        let! v = Gen.elements numbers
        let! xName, x = pick tensors
        let! tName, times = pick grids
        let! which = Gen.choose (0, 13)
        let name, run =
            match which with
            | 0 -> $"GalLinear({n}, {m}).forward(x={xName}, {v})", (fun () -> use l = new GalLinear(int64 n, int64 m, Basis.fourier 1 1.0, torch.float64) in l.forward(x (), v) |> ignore)
            | 1 -> $"StackedLinear({n}, {m}, {tName})", (fun () -> use l = new StackedLinear(int64 n, int64 m, times, torch.float64) in l.forward(x ()) |> ignore)
            | 2 -> $"ZeroAugmentation({n}).forward({xName})", (fun () -> use a = new ZeroAugmentation(int64 n) in a.forward(x ()) |> ignore)
            | 3 -> $"HigherOrderField({n}).forward({xName})", (fun () -> use h = new HigherOrderField(n, Linear(2L, 1L, dtype = torch.float64)) in h.forward(x ()) |> ignore)
            | 4 -> $"DataControl().forward({xName})", (fun () -> use d = new DataControl() in d.forward(x ()) |> ignore)
            | 5 -> $"NeuralOdeModel(times {tName}).forward({xName})", (fun () -> use b = new NeuralOdeModel(Linear(2L, 2L, dtype = torch.float64), Solvers.dopri5, StepControl.adaptive 1e-4 1e-4, times) in b.forward(x ()) |> ignore)
            | 6 -> $"AdaptiveDepthModel(minDepth {v}).forward({xName})", (fun () -> use b = new AdaptiveDepthModel("a", Linear(2L, 2L, dtype = torch.float64), Linear(2L, 1L, dtype = torch.float64), Solvers.rk4, StepControl.steps 4, Sensitivity.Autograd, v) in b.forward(x ()) |> ignore)
            | 7 -> $"Cnf(dimension {n}).LogProbability({xName})", (fun () -> use c = new Cnf(Linear(2L, 2L, dtype = torch.float64), n, TraceEstimator.Exact, Solvers.rk4, StepControl.steps 4) in c.LogProbability(x ()) |> ignore)
            | 8 -> $"Basis.legendre {n} {v} / valuesAt {v}", (fun () -> Basis.valuesAt (Basis.legendre n v) v |> ignore)
            | 9 -> $"Annuli.sample {n} {v}", (fun () -> use g = torch.Generator(1UL) in Annuli.sample n v torch.float64 g |> ignore)
            | 10 -> $"Spheres.sample dim {n} inner {m} noise-free", (fun () -> use g = torch.Generator(1UL) in Spheres.sample n m m torch.float64 g |> ignore)
            | 12 -> $"HamiltonianField({n}).forward({xName})", (fun () -> use h = new HamiltonianField(n, Sequential(Linear(2L, 4L, dtype = torch.float64), Tanh(), Linear(4L, 1L, dtype = torch.float64))) in h.forward(x ()) |> ignore)
            | 13 -> $"LagrangianField({n}, ridge {v}).forward({xName})", (fun () -> use l = new LagrangianField(n, Sequential(Linear(2L, 4L, dtype = torch.float64), Tanh(), Linear(4L, 1L, dtype = torch.float64)), v) in l.forward(x ()) |> ignore)
            | _ -> $"Moons.sample {n} {v}", (fun () -> use g = torch.Generator(1UL) in Moons.sample n v torch.float64 g |> ignore)
        return { Name = name; Run = fun () -> (use _ = torch.NewDisposeScope() in run ()) }
    }

/// Calls of the C# facade (namespace NeuralOde), as a C# user makes them: its factories validate, and its entry points
/// delegate to the core.
let private facadeCase =
    gen {
        let! fName, f = pick fields
        let! xName, x = pick tensors
        let! tName, times = pick grids
        let! n = Gen.elements counts
        let! k = Gen.elements counts
        let! v = Gen.elements numbers
        let! which = Gen.choose (0, 12)
        let field = Func<float, Tensor, Tensor>(fun t z -> f t z)
        let name, run =
            match which with
            | 0 -> $"C# Ode.Solve f={fName} x0={xName} times={tName} Adaptive(rtol {v})",
                   (fun () -> use s = global.NeuralOde.Ode.Solve(field, x (), times, global.NeuralOde.Solvers.Dopri5(), global.NeuralOde.StepSize.Adaptive(rtol = v)) in ())
            | 1 -> $"C# Ode.Solve f={fName} x0={xName} times={tName} Fixed({v}, {n})",
                   (fun () -> use s = global.NeuralOde.Ode.Solve(field, x (), times, global.NeuralOde.Solvers.Rk4(), global.NeuralOde.StepSize.Fixed(v, n)) in ())
            | 2 -> $"C# Ode.Solve f={fName} x0={xName} adjoint(checkpoints {n}) + Backward",
                   (fun () ->
                       let x0 = x ()
                       use s = global.NeuralOde.Ode.Solve(field, x0, [| 0.0; 1.0 |], global.NeuralOde.Solvers.Dopri5(), null, global.NeuralOde.Sensitivities.Adjoint(checkpoints = n))
                       if s.Final.requires_grad then global.NeuralOde.Ode.Backward(s.Final.sum()))
            | 3 -> $"C# Ode.TrySolve f={fName} x0={xName} times={tName} Steps({n})",
                   (fun () -> use s = global.NeuralOde.Ode.TrySolve(field, x (), times, global.NeuralOde.Solvers.Rk4(), global.NeuralOde.StepSize.Steps(n)) in ())
            | 4 -> $"C# NeuralOdeBlock(times {tName}).forward({xName})",
                   (fun () -> use b = new global.NeuralOde.NeuralOdeBlock(Linear(2L, 2L, dtype = torch.float64), times) in b.forward(x ()) |> ignore)
            | 5 -> $"C# GalerkinLinear({n}, {k}, Fourier({k})).forward({xName}, {v})",
                   (fun () -> use l = new global.NeuralOde.GalerkinLinear(int64 n, int64 k, global.NeuralOde.Bases.Fourier(k), torch.ScalarType.Float64) in l.forward(x (), v) |> ignore)
            | 6 -> $"C# Datasets.Annuli({n}, {v}) / Moons / Spirals",
                   (fun () -> global.NeuralOde.Datasets.Annuli(n, v) |> ignore; global.NeuralOde.Datasets.Moons(n, v) |> ignore; global.NeuralOde.Datasets.Spirals(n, v) |> ignore)
            | 7 -> $"C# Datasets.GaussianMixture({n}, {k}, {v}, {v}) / Checkerboard({n}) / Reflection({k}, {n})",
                   (fun () -> global.NeuralOde.Datasets.GaussianMixture(n, k, v, v) |> ignore; global.NeuralOde.Datasets.Checkerboard(n) |> ignore; global.NeuralOde.Datasets.Reflection(k, n) |> ignore)
            | 8 -> $"C# Datasets.Spheres(dim {k}, {n}, {n}, {v})",
                   (fun () -> global.NeuralOde.Datasets.Spheres(k, n, n, v) |> ignore)
            | 9 -> $"C# ContinuousNormalizingFlow(dim {n}).LogProbability({xName})",
                   (fun () -> use c = new global.NeuralOde.ContinuousNormalizingFlow(Linear(2L, 2L, dtype = torch.float64), n, solver = global.NeuralOde.Solvers.Rk4(), stepSize = global.NeuralOde.StepSize.Steps(2)) in c.LogProbability(x ()) |> ignore)
            | 10 -> $"C# Bases.Legendre({n}, {v}).Values({v})",
                    (fun () -> global.NeuralOde.Bases.Legendre(n, v).Values(v) |> ignore)
            | 11 -> $"C# Ode.SolveSpans x0={xName} t0={tName}",
                    (fun () ->
                        use t0 = (if isNull times then null else torch.tensor(times, dtype = torch.float64))
                        use s = global.NeuralOde.Ode.SolveSpans(Func<Tensor, Tensor, Tensor>(fun _ z -> z.neg()), x (), t0, t0) in ())
            | _ -> $"C# AdaptiveDepthBlock(minDepth {v}).forward({xName})",
                   (fun () -> use b = new global.NeuralOde.AdaptiveDepthBlock(Linear(2L, 2L, dtype = torch.float64), Linear(2L, 1L, dtype = torch.float64), minDepth = v) in b.forward(x ()) |> ignore)
        return { Name = name; Run = fun () -> (use _ = torch.NewDisposeScope() in run ()) }
    }

/// Typed exceptions: the library said what was wrong.
let private typed (e: exn) =
    match e with
    | :? ArgumentException | :? ObjectDisposedException | :? OdeSolveException | :? InvalidOperationException
    | :? NotSupportedException -> not (e :? ObjectDisposedException) || e.Message.Length > 0
    | _ -> false

/// Runs a case with a time limit; None when it behaved, else what went wrong.
let private verdict (limit: TimeSpan) (case: Case) : string option =
    let task = Task.Run(fun () -> try Ok(case.Run()) with e -> Error e)
    if not (task.Wait limit) then
        // A hang: this process cannot stop the thread; report and end it, failing the parent.
        printfn "HANG (over %.0f s): %s" limit.TotalSeconds case.Name
        exit 4
    match task.Result with
    | Ok() -> None
    | Error e when typed e -> None
    | Error e -> Some $"untyped {e.GetType().FullName}: {e.Message.Split('\n').[0]}"

/// The child scenario: `cases` random calls; exit code 0 when every one behaved.
let run (cases: int) () : int =
    let all = Gen.frequency [ 5, solveCase; 1, spansCase; 1, theoremCase; 2, modelCase; 3, facadeCase ]
    let failures = ResizeArray<string>()
    let counts = Collections.Generic.Dictionary<string, int>()
    let sample = Gen.sample cases all
    for case in sample do
        match verdict (TimeSpan.FromSeconds 30.0) case with
        | None -> ()
        | Some why -> failures.Add $"{case.Name}\n    {why}"
    printfn "%d calls, %d misbehaved" sample.Length failures.Count
    for f in failures |> Seq.truncate 30 do printfn "%s" f
    if failures.Count = 0 then 0 else 3
