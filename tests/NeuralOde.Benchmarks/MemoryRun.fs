/// Memory hygiene: W1 for many iterations; resident memory must stay flat after warm-up and no tensor may be left
/// alive by the loop.
module NeuralOde.Benchmarks.MemoryRun

open System
open TorchSharp

/// Memory over a long training run: the loop must not leak native or managed memory.
let run (iterations: int) =
    let _, w1 = Workloads.w1 1024 64 0
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
    [ Report.value "memory/W1" "iterations" (float iterations) "" "RK4, 20 steps, batch 1024, MLP 2-64-64-2"
      Report.value "memory/W1" "RSS after warm-up" (atWarmup) "MiB" $"median of 5 readings from iteration {warmup}"
      Report.value "memory/W1" "RSS at end" (final) "MiB" "median of the last 5 readings"
      Report.value "memory/W1" "growth after warm-up" growth "%" verdict
      Report.value "memory/W1" "fitted RSS trend" (slope * 1000.0) "MiB per 1000 iterations" "least squares over the readings after warm-up"
      Report.value "memory/W1" "tensors left alive by the loop" (float (aliveAfter - aliveBefore)) "tensors" "DisposeScopeManager statistics" ],
    growth < 5.0

