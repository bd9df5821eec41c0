/// A one-line progress bar for training loops: iteration, loss, elapsed time; redrawn in place on a terminal, printed
/// every tenth of the run otherwise (logs stay short).
module Appendix.Progress

open System
open System.Diagnostics

/// A bar for `total` iterations labelled `label`.
type Bar(label: string, total: int) =
    let clock = Stopwatch.StartNew()
    let interactive = not Console.IsOutputRedirected
    let mutable lastPrinted = 0
    /// Reports iteration `i` (1-based) with its loss.
    member _.Report(i: int, loss: float) =
        let width = 24
        let filled = min width (i * width / max 1 total)
        let line = $"  {label} [{String('#', filled)}{String('.', width - filled)}] {i}/{total} loss {loss:G4} {clock.Elapsed.TotalSeconds:F0} s"
        if interactive then
            Console.Write("\r" + line.PadRight(100))
            if i = total then Console.WriteLine()
        elif i = 1 || i = total || i * 10 / max 1 total > lastPrinted * 10 / max 1 total then
            Console.WriteLine line
        lastPrinted <- i
    /// Seconds since the bar was made.
    member _.Seconds = clock.Elapsed.TotalSeconds
