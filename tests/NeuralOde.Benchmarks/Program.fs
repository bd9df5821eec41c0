/// Benchmarks (run by `dotnet fsi build.fsx bench`, never by the tests):
///   memory  [--iterations N]  W1 for N iterations (default 10,000); resident memory sampled every N/20 iterations
///                             must stay flat after warm-up (growth under 5%), and the dispose-scope statistics must
///                             show no tensor left alive per iteration.
///   w1      [--repeats N]     W1 iteration time, median/min/max after warm-up.
///   w4                        peak memory of one forward + backward pass (batch 4096, MLP 2→256→256→2, RK4 with
///                             10, 100 and 1000 steps; the adjoint also 3000), autograd against the adjoint; each
///                             in its own process. Native memory of the adjoint is constant in the steps; what
///                             still grows is the managed heap of short-lived tensor wrappers (~0.3 KB per tensor
///                             op) until the GC's first collections, which saturates.
///   peak --method M --steps N (internal) one such pass; prints its peak memory.
///   all                       memory (2,000 iterations), w1 and w4.
module NeuralOde.Benchmarks.Program

open System
open TorchSharp
open NeuralOde.Benchmarks.Report

let private option (args: string list) (name: string) (fallback: string) =
    match args |> List.skipWhile ((<>) name) with
    | _ :: value :: _ -> value
    | _ -> fallback

/// Memory over a long training run: the loop must not leak native or managed memory.
let memory (iterations: int) =
    let w1 = Workloads.W1.Standard 0
    let samples = ResizeArray<int * float>()
    let every = max 1 (iterations / 20)
    let warmup = max 1 (iterations / 10)
    let clock = Diagnostics.Stopwatch.StartNew()
    let aliveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount
    for i in 1 .. iterations do
        w1.Step() |> ignore
        if i % every = 0 || i = warmup then
            let rss = Measure.residentMiB ()
            samples.Add((i, rss))
            printfn "  memory: iteration %6d  RSS %8.1f MiB  (%.0f s)" i rss clock.Elapsed.TotalSeconds
    let aliveAfter = DisposeScopeManager.Statistics.ThreadTotalLiveCount
    // Single readings of RSS move by a few percent either way (allocator arenas), so growth compares the median of
    // the first five readings after warm-up with the median of the last five, and the fitted slope shows any trend.
    let steady = samples |> Seq.filter (fun (i, _) -> i >= warmup) |> Array.ofSeq
    let medianOf (xs: (int * float)[]) = (Measure.summarize (Array.map snd xs)).Median
    let atWarmup = medianOf steady[.. min 4 (steady.Length - 1)]
    let final = medianOf steady[max 0 (steady.Length - 5) ..]
    let growth = (final - atWarmup) / atWarmup * 100.0
    let slope =
        let xs, ys = steady |> Array.map (fst >> float), steady |> Array.map snd
        let mx, my = Array.average xs, Array.average ys
        (Array.map2 (fun x y -> (x - mx) * (y - my)) xs ys |> Array.sum) / (xs |> Array.sumBy (fun x -> (x - mx) ** 2.0))
    let verdict = if growth < 5.0 then "flat (target < 5%)" else "GROWS (target < 5%)"
    [ { Benchmark = "memory/W1"; Metric = "iterations"; Value = float iterations; Unit = ""; Note = "RK4, 20 steps, batch 1024, MLP 2-64-64-2" }
      { Benchmark = "memory/W1"; Metric = "RSS after warm-up"; Value = atWarmup; Unit = "MiB"; Note = $"median of 5 readings from iteration {warmup}" }
      { Benchmark = "memory/W1"; Metric = "RSS at end"; Value = final; Unit = "MiB"; Note = "median of the last 5 readings" }
      { Benchmark = "memory/W1"; Metric = "growth after warm-up"; Value = growth; Unit = "%"; Note = verdict }
      { Benchmark = "memory/W1"; Metric = "fitted RSS trend"; Value = slope * 1000.0; Unit = "MiB per 1000 iterations"; Note = "least squares over the readings after warm-up" }
      { Benchmark = "memory/W1"; Metric = "tensors left alive by the loop"; Value = float (aliveAfter - aliveBefore); Unit = "tensors"; Note = "DisposeScopeManager statistics" } ],
    growth < 5.0

/// W1 iteration time.
let w1Timing (repeats: int) =
    let w1 = Workloads.W1.Standard 1
    let s = Measure.time 20 repeats (fun () -> w1.Step() |> ignore)
    [ { Benchmark = "W1"; Metric = "iteration median"; Value = s.Median; Unit = "ms"; Note = $"{s.Count} runs after 20 warm-up, 2 threads" }
      { Benchmark = "W1"; Metric = "iteration min"; Value = s.Min; Unit = "ms"; Note = "" }
      { Benchmark = "W1"; Metric = "iteration max"; Value = s.Max; Unit = "ms"; Note = "" }
      { Benchmark = "W1"; Metric = "function evaluations"; Value = float w1.Model.LastStatistics.FunctionEvaluations; Unit = ""; Note = "forward" } ]

/// One forward + backward pass in this process; returns (RSS before, peak RSS) in MiB.
let peakPass (methodName: string) (steps: int) =
    let sensitivity = if methodName = "adjoint" then NeuralOde.Core.Sensitivity.adjoint else NeuralOde.Core.Sensitivity.Autograd
    torch.manual_seed(0L) |> ignore
    let field = torch.nn.Sequential(torch.nn.Linear(2L, 256L), torch.nn.Tanh(), torch.nn.Linear(256L, 256L), torch.nn.Tanh(), torch.nn.Linear(256L, 2L))
    use model = new NeuralOde.Core.NeuralOdeModel(field, NeuralOde.Core.Solvers.rk4, NeuralOde.Core.StepControl.steps steps, sensitivity, [| 0.0; 1.0 |])
    use x = torch.randn([| 4096L; 2L |])
    let before = Measure.residentMiB ()
    use loss = model.forward(x).square().sum()
    loss.backward()
    before, Measure.peakResidentMiB ()

/// W4: each configuration in a child process, so each peak is its own.
let w4 () =
    let self = Diagnostics.Process.GetCurrentProcess().MainModule.FileName
    let dll = Reflection.Assembly.GetExecutingAssembly().Location
    let measured = Collections.Generic.Dictionary<string * int, float>()
    [ for methodName in [ "autograd"; "adjoint" ] do
        // The adjoint also runs 3000 steps: its peak must saturate, not grow with the steps.
        for steps in (if methodName = "adjoint" then [ 10; 100; 1000; 3000 ] else [ 10; 100; 1000 ]) do
            // Autograd keeps every stage's activations: project from 100 steps and skip what cannot fit.
            let projected =
                match measured.TryGetValue((methodName, 100)) with
                | true, at100 when methodName = "autograd" && steps > 100 -> Some(at100 * float steps / 100.0)
                | _ -> None
            match projected with
            | Some p when p > 0.6 * Measure.availableMiB () ->
                yield { Benchmark = "W4"; Metric = $"{methodName}, {steps} steps"; Value = p / 1024.0; Unit = "GiB (projected)"
                        Note = $"not run: more than 60%% of the {Measure.availableMiB () / 1024.0:F1} GiB available" }
            | _ ->
                let psi = Diagnostics.ProcessStartInfo(self, [ dll; "peak"; "--method"; methodName; "--steps"; string steps ], RedirectStandardOutput = true)
                use p = Diagnostics.Process.Start psi
                let output = p.StandardOutput.ReadToEnd()
                p.WaitForExit()
                let line = output.Split('\n') |> Array.find (fun l -> l.StartsWith "peak ")
                let parts = line.Split(' ')
                let before, peak = float parts[1], float parts[2]
                measured[(methodName, steps)] <- peak - before
                printfn "  W4 %s %d steps: +%.3f GiB (peak %.0f MiB, %.0f MiB before)" methodName steps ((peak - before) / 1024.0) peak before
                yield { Benchmark = "W4"; Metric = $"{methodName}, {steps} steps"; Value = (peak - before) / 1024.0; Unit = "GiB above the pre-pass RSS"
                        Note = "batch 4096, MLP 2-256-256-2, RK4, float32" } ]

[<EntryPoint>]
let main argv =
    let args = List.ofArray argv
    let out = option args "--out" "out/bench"
    torch.set_num_threads 2
    let command = match args with c :: _ when not (c.StartsWith "--") -> c | _ -> "all"
    match command with
    | "memory" ->
        let rows, ok = memory (int (option args "--iterations" "10000"))
        write out "memory" rows
        if ok then 0 else 1
    | "peak" ->
        let before, peak = peakPass (option args "--method" "adjoint") (int (option args "--steps" "10"))
        printfn "peak %f %f" before peak
        0
    | "w4" ->
        write out "w4" (w4 ())
        0
    | "w1" ->
        write out "w1" (w1Timing (int (option args "--repeats" "100")))
        0
    | "all" ->
        let rows, ok = memory (int (option args "--iterations" "2000"))
        write out "memory" rows
        write out "w1" (w1Timing (int (option args "--repeats" "100")))
        write out "w4" (w4 ())
        if ok then 0 else 1
    | other ->
        eprintfn "Unknown benchmark '%s'. Benchmarks: memory, w1, w4, all." other
        2
