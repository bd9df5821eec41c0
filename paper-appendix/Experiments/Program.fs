/// The paper's experiments, one command each:
///   NeuralOde.Appendix list | all | NAME... [quick] [--seed N] [--out DIR] [--threads N]
///                      [--size paper] [--epochs N] [--train-limit N] [--test-limit N]   (images only)
/// Each writes its figures and results.md (ours beside the paper's numbers) to DIR/NAME (default
/// paper-appendix/output), prints its wall time, and exits non-zero when an experiment's check does not hold.
module Appendix.Program

open System
open System.Diagnostics
open System.IO
open Appendix.Experiment

let experiments =
    [ Figure1Tracking.experiment
      Figure2GalerkinStacked.experiment
      Figure3DataControl.experiment
      Figure4ConditionalCnf.experiment
      Figure5AdaptiveDepth.experiment
      G1dAugmentation.experiment
      AnnuliVariants.experiment
      ImageAugmentation.experiment ]

[<EntryPoint>]
let main argv =
    let args = List.ofArray argv
    let rec option name = function
        | n :: value :: _ when n = name -> Some value
        | _ :: rest -> option name rest
        | [] -> None
    // Two threads (CI's cores) unless --threads says otherwise; the test command also runs them on one.
    let threads = option "--threads" args |> Option.map int |> Option.defaultValue 2
    TorchSharp.torch.set_num_threads threads
    printfn "threads: %d; ONEDNN_MAX_CPU_ISA: %s" threads (match System.Environment.GetEnvironmentVariable "ONEDNN_MAX_CPU_ISA" with null | "" -> "default" | v -> v)
    // libtorch's float32 convolutions are wrong on some CPUs unless oneDNN is off (the images experiment trains them).
    printfn "convolutions: %O" (NeuralOde.Core.Native.OneDnnCheck.ensureCorrect ())
    let quick = List.contains "quick" args || List.contains "--quick" args
    let seed = option "--seed" args |> Option.map uint64 |> Option.defaultValue 7UL
    let out = option "--out" args |> Option.defaultValue (Path.Combine("paper-appendix", "output"))
    let size = option "--size" args
    let positive name =
        option name args |> Option.map (fun v ->
            match Int32.TryParse v with
            | true, n when n > 0 -> n
            | _ -> failwithf "%s must be a positive whole number; got '%s'" name v)
    let epochs, trainLimit, testLimit = positive "--epochs", positive "--train-limit", positive "--test-limit"
    match size with
    | Some s when s <> "paper" -> failwithf "--size: the only larger size is 'paper' (images); got '%s'" s
    | _ -> ()
    // Every option's value, so that none is taken for an experiment's name.
    let values = [ "--seed"; "--out"; "--threads"; "--size"; "--epochs"; "--train-limit"; "--test-limit" ] |> List.choose (fun o -> option o args)
    let names = args |> List.filter (fun a -> not (a.StartsWith "-") && a <> "quick" && not (List.contains a values))
    match names with
    | [] | [ "list" ] ->
        printfn "Experiments (dotnet fsi build.fsx appendix NAME [quick]; all runs every one):"
        for e in experiments do printfn "  %-10s %s" e.Name e.Title
        0
    | _ ->
        let chosen =
            if names = [ "all" ] then experiments
            else
                names |> List.map (fun n ->
                    match experiments |> List.tryFind (fun e -> e.Name = n) with
                    | Some e -> e
                    | None -> failwithf "unknown experiment '%s'; known: %s" n (experiments |> List.map (fun e -> e.Name) |> String.concat ", "))
        // The test command compares the verdict lines with this count: an experiment that never reports fails.
        printfn "experiments to run: %d" chosen.Length
        let results =
            [ for e in chosen do
                let dir = Path.Combine(out, e.Name)
                Directory.CreateDirectory dir |> ignore
                printfn "== %s%s: %s" e.Name (if quick then " (quick)" else "") e.Title
                let settings = { Quick = quick; Seed = seed; Out = dir; Size = size; Epochs = epochs; TrainLimit = trainLimit; TestLimit = testLimit }
                let clock = Stopwatch.StartNew()
                let outcome =
                    try e.Run settings
                    with ex ->
                        { Rows = []; Figures = []; Notes = [ $"failed: {ex}" ]; Check = "the experiment ran"; Passed = false }
                let seconds = clock.Elapsed.TotalSeconds
                try Report.write e settings outcome seconds
                with ex -> printfn "   could not write results.md: %s" ex.Message
                for r in outcome.Rows do printfn "   %s: %s   (paper: %s)" r.Quantity r.Ours r.Paper
                for n in outcome.Notes do if n.StartsWith "failed:" then printfn "   %s" n
                printfn "   check: %s — %s" outcome.Check (if outcome.Passed then "holds" else "DOES NOT HOLD")
                printfn "   wall time %.0f s; figures and results.md in %s" seconds dir
                printfn "experiment %s: %s" e.Name (if outcome.Passed then "passed" else "FAILED")
                yield outcome.Passed ]
        if List.forall id results then 0 else 1
