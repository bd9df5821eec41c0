/// Timing and memory readings.
module NeuralOde.Benchmarks.Measure

open System
open System.Diagnostics

/// Resident set size of this process in MiB, after a full garbage collection (so finalisable tensors left to the
/// GC would show up as growth only if nothing disposed them).
let residentMiB () =
    GC.Collect()
    GC.WaitForPendingFinalizers()
    GC.Collect()
    use p = Process.GetCurrentProcess()
    p.Refresh()
    float p.WorkingSet64 / (1024.0 * 1024.0)

/// Median, min and max of a sample.
type Summary = { Median: float; Min: float; Max: float; Count: int }

let summarize (xs: float[]) =
    let s = Array.sort xs
    let median = if s.Length % 2 = 1 then s[s.Length / 2] else 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2])
    { Median = median; Min = s[0]; Max = s[s.Length - 1]; Count = s.Length }

/// Milliseconds of `repeats` calls of each action, after `warmup` untimed rounds; the actions are interleaved run
/// by run (so they share the machine's noise) and each is summarised.
let interleaved (warmup: int) (repeats: int) (actions: (unit -> unit)[]) =
    for _ in 1 .. warmup do for a in actions do a ()
    let samples = actions |> Array.map (fun _ -> Array.zeroCreate<float> repeats)
    for r in 0 .. repeats - 1 do
        actions |> Array.iteri (fun i a ->
            let clock = Stopwatch.StartNew()
            a ()
            samples[i][r] <- clock.Elapsed.TotalMilliseconds)
    samples |> Array.map summarize

/// Milliseconds of each of `repeats` calls of `action`, after `warmup` untimed calls.
let time (warmup: int) (repeats: int) (action: unit -> unit) = (interleaved warmup repeats [| action |])[0]

/// Like `time`, but the number of runs adapts to the cost: after `warmup` calls, as many as fit in `budgetMs`
/// (at least `least`, at most `most`).
let timeWithin (warmup: int) (least: int) (most: int) (budgetMs: float) (action: unit -> unit) =
    for _ in 1 .. warmup do action ()
    let clock = Stopwatch.StartNew()
    action ()
    let first = clock.Elapsed.TotalMilliseconds
    let repeats = max least (min most (int (budgetMs / max first 1e-3)))
    time 0 repeats action

/// Peak resident set size of this process so far (VmHWM), in MiB.
let peakResidentMiB () =
    System.IO.File.ReadAllLines "/proc/self/status"
    |> Array.find (fun l -> l.StartsWith "VmHWM:")
    |> fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0

/// Memory available to new processes (MemAvailable), in MiB.
let availableMiB () =
    System.IO.File.ReadAllLines "/proc/meminfo"
    |> Array.find (fun l -> l.StartsWith "MemAvailable:")
    |> fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0
