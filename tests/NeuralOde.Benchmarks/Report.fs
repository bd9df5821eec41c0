/// Writes benchmark results as a markdown table and JSON.
module NeuralOde.Benchmarks.Report

open System.IO
open System.Text.Json

/// One figure. Timings carry their median in Value and the min and max of the runs; other figures have no range.
type Row =
    { Benchmark: string; Metric: string; Value: float; Min: float option; Max: float option; Unit: string; Note: string }

/// A single figure.
let value benchmark metric v unit note =
    { Benchmark = benchmark; Metric = metric; Value = v; Min = None; Max = None; Unit = unit; Note = note }

/// A timing: median, with min and max.
let timing benchmark metric (s: Measure.Summary) note =
    { Benchmark = benchmark; Metric = metric; Value = s.Median; Min = Some s.Min; Max = Some s.Max; Unit = "ms"
      Note = (if note = "" then $"{s.Count} runs" else $"{s.Count} runs; {note}") }

let private cell (x: float option) = match x with Some v -> $"{v:G4}" | None -> ""

let write (dir: string) (name: string) (rows: Row list) =
    Directory.CreateDirectory dir |> ignore
    let md =
        [ yield $"# {name}"
          yield ""
          yield "| benchmark | metric | value (median) | min | max | unit | note |"
          yield "|---|---|---|---|---|---|---|"
          for r in rows do
              yield $"| {r.Benchmark} | {r.Metric} | {r.Value:G4} | {cell r.Min} | {cell r.Max} | {r.Unit} | {r.Note} |" ]
    File.WriteAllLines(Path.Combine(dir, name + ".md"), md)
    File.WriteAllText(Path.Combine(dir, name + ".json"), JsonSerializer.Serialize(rows, JsonSerializerOptions(WriteIndented = true)))
    md |> List.iter (printfn "%s")
