/// The markdown report of a run: paper-appendix/output/NAME/results.md.
module Appendix.Report

open System
open System.IO
open Appendix.Experiment

/// Writes results.md for `experiment` run with `settings`, which took `seconds`.
let write (experiment: Experiment) (settings: Settings) (outcome: Outcome) (seconds: float) =
    let options =
        [ match settings.Size with Some s -> yield $" --size {s}" | None -> ()
          match settings.Epochs with Some n -> yield $" --epochs {n}" | None -> ()
          match settings.TrainLimit with Some n -> yield $" --train-limit {n}" | None -> ()
          match settings.TestLimit with Some n -> yield $" --test-limit {n}" | None -> () ]
    let quickFlag = (if settings.Quick then " quick" else "") + String.concat "" options
    let quickNote = if settings.Quick then " (quick mode: small sizes, not the paper's)" else ""
    let verdict = if outcome.Passed then "holds" else "DOES NOT HOLD"
    let lines =
        [ yield $"# {experiment.Title}"
          yield ""
          yield $"Command: `dotnet fsi build.fsx appendix {experiment.Name}{quickFlag}` — seed {settings.Seed}, wall time {seconds:F0} s{quickNote}."
          yield ""
          yield $"**The paper:** {experiment.Claim}"
          yield ""
          yield "| quantity | ours | paper |"
          yield "|---|---|---|"
          for r in outcome.Rows do yield $"| {r.Quantity} | {r.Ours} | {r.Paper} |"
          yield ""
          yield $"**Check:** {outcome.Check} — {verdict}."
          yield ""
          for n in outcome.Notes do yield $"- {n}"
          yield ""
          for f in outcome.Figures do yield $"![{f}]({f})" ]
    File.WriteAllLines(Path.Combine(settings.Out, "results.md"), lines)
