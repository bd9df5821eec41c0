/// Writes benchmark results as a markdown table and JSON.
module NeuralOde.Benchmarks.Report

open System.IO
open System.Text.Json

type Row = { Benchmark: string; Metric: string; Value: float; Unit: string; Note: string }

let write (dir: string) (name: string) (rows: Row list) =
    Directory.CreateDirectory dir |> ignore
    let md =
        [ yield $"# {name}"
          yield ""
          yield "| benchmark | metric | value | unit | note |"
          yield "|---|---|---|---|---|"
          for r in rows do
              yield $"| {r.Benchmark} | {r.Metric} | {r.Value:G4} | {r.Unit} | {r.Note} |" ]
    File.WriteAllLines(Path.Combine(dir, name + ".md"), md)
    File.WriteAllText(Path.Combine(dir, name + ".json"), JsonSerializer.Serialize(rows, JsonSerializerOptions(WriteIndented = true)))
    md |> List.iter (printfn "%s")
