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

/// Milliseconds of each of `repeats` calls of `action`, after `warmup` untimed calls.
let time (warmup: int) (repeats: int) (action: unit -> unit) =
    for _ in 1 .. warmup do action ()
    Array.init repeats (fun _ ->
        let clock = Stopwatch.StartNew()
        action ()
        clock.Elapsed.TotalMilliseconds)
    |> summarize

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
