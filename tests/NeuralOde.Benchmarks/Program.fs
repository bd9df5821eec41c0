/// Benchmarks (run by `dotnet fsi build.fsx bench`, never by the tests):
///   memory  [--iterations N]  W1 for N iterations (default 10,000); resident memory sampled every N/20 iterations
///                             must stay flat after warm-up (growth under 5%), and the dispose-scope statistics must
///                             show no tensor left alive per iteration.
///   w1      [--repeats N]     W1 iteration time, median/min/max after warm-up.
///   all                       both (the default), with the memory run shortened to 2,000 iterations.
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
    | "w1" ->
        write out "w1" (w1Timing (int (option args "--repeats" "100")))
        0
    | "all" ->
        let rows, ok = memory (int (option args "--iterations" "2000"))
        write out "memory" rows
        write out "w1" (w1Timing (int (option args "--repeats" "100")))
        if ok then 0 else 1
    | other ->
        eprintfn "Unknown benchmark '%s'. Benchmarks: memory, w1, all." other
        2
