// Data-parallel scaling on this machine (loaded by build.fsx: `dotnet fsi build.fsx bench distributed [--rounds N]
// [--iterations N] [--quick]`): the benchmark binary's `distributed` command (Scaling.fs: W1's model trained by the
// Trainer with a World, global batch 4096) under mpirun at 1 rank and at 2 ranks of one thread each, alternated round by
// round in the same minutes (this VM drifts), with three references: one process at 2 threads (the alternative to
// ranks on one machine), and one rank alone on a half batch (2048: what each of two ranks computes, without the other
// running) and on an eighth (512: what each of 8 ranks would compute). Writes out/bench/distributed.md: medians over
// rounds, speedup and efficiency, the collectives' share, and a paper estimate for 8 ranks on 4 machines.
module Scaling

#load "../Scripts/Exec.fsx"

open System
open System.IO
open System.Text.RegularExpressions

type Configuration = { Label: string; Ranks: int; Threads: int; Batch: int }

let configurations =
    [ { Label = "1 rank, 1 thread, batch 4096"; Ranks = 1; Threads = 1; Batch = 4096 }
      { Label = "2 ranks, 1 thread each, global batch 4096 (2048 each)"; Ranks = 2; Threads = 1; Batch = 4096 }
      { Label = "1 rank, 2 threads, batch 4096"; Ranks = 1; Threads = 2; Batch = 4096 }
      { Label = "1 rank, 1 thread, batch 2048 (one rank's share, alone)"; Ranks = 1; Threads = 1; Batch = 2048 }
      { Label = "1 rank, 1 thread, batch 512 (one of 8 ranks' share)"; Ranks = 1; Threads = 1; Batch = 512 } ]

let private field (name: string) (line: string) =
    let m = Regex.Match(line, name + "=([0-9.]+)")
    if m.Success then float m.Groups.[1].Value else nan

let private median (xs: float list) =
    let a = List.sort xs |> Array.ofList
    if a.Length = 0 then nan elif a.Length % 2 = 1 then a.[a.Length / 2] else 0.5 * (a.[a.Length / 2 - 1] + a.[a.Length / 2])

/// One run: (iteration ms, collectives ms, gradient bytes), or an error.
let measure (binary: string) (iterations: int) (warmup: int) (c: Configuration) =
    let environment = [ "OMPI_ALLOW_RUN_AS_ROOT", "1"; "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"; "TERM", "dumb" ]
    let code, output =
        Exec.run false (TimeSpan.FromMinutes 20.0) "." environment "/usr/bin/mpirun"
            [ "-np"; string c.Ranks; "--oversubscribe"; "--bind-to"; "none"; "dotnet"; binary; "distributed"
              "--batch"; string c.Batch; "--iterations"; string iterations; "--warmup"; string warmup; "--rank-threads"; string c.Threads ]
    let line = output.Split('\n') |> Array.tryFind (fun l -> l.Contains "distributed ranks=")
    match code, line with
    | 0, Some l -> Ok(field "iteration_ms" l, field "collectives_ms" l, field "gradient_bytes" l)
    | _ -> Error $"exit code {code}: {output}"

/// Runs the rounds and writes the table; returns 0, or 1 when a run failed.
let run (binary: string) (out: string) (rounds: int) (iterations: int) (warmup: int) =
    let results = Collections.Generic.Dictionary<string, ResizeArray<float * float * float>>()
    let mutable failed = false
    for round in 1 .. rounds do
        // Alternate the order each round, so that neither configuration always runs first.
        let order = if round % 2 = 1 then configurations else List.rev configurations
        for c in order do
            match measure binary iterations warmup c with
            | Ok r ->
                if not (results.ContainsKey c.Label) then results.[c.Label] <- ResizeArray()
                results.[c.Label].Add r
                let ms, coll, _ = r
                printfn "round %d: %s: %.1f ms per iteration (collectives alone %.3f ms)" round c.Label ms coll
            | Error e ->
                printfn "round %d: %s FAILED: %s" round c.Label e
                failed <- true
    if failed then 1
    else
    let med label f = results.[label] |> Seq.map f |> List.ofSeq |> median
    let iteration label = med label (fun (ms, _, _) -> ms)
    let labels = configurations |> List.map (fun c -> c.Label)
    let t1, t2, t1x2, half, eighth = iteration labels.[0], iteration labels.[1], iteration labels.[2], iteration labels.[3], iteration labels.[4]
    let collectives = med labels.[1] (fun (_, c, _) -> c)
    let bytes = med labels.[1] (fun (_, _, b) -> b)
    let speedup = t1 / t2
    // Paper estimate for 8 ranks on 4 machines (2 ranks, one per core, on each): each rank computes an eighth of the
    // batch, slowed by its neighbour on the same machine as measured here (t2 / half); the collectives cross the
    // network: ring allreduce of the gradients, 2(p−1) messages of S/p bytes, plus the trainer's two small
    // agreements, latency-bound (2 log2 p messages each), at a stated latency and bandwidth.
    let p = 8.0
    let alpha, beta = 50e-6, 1.25e9   // 50 µs per message (TCP over Ethernet, Open MPI's tcp BTL), 10 Gb/s
    let ring = 2.0 * (p - 1.0) * alpha + 2.0 * (p - 1.0) / p * bytes / beta
    let agreements = 2.0 * (2.0 * Math.Log2 p * alpha)
    let network = 1000.0 * (ring + agreements)
    let compute8 = eighth * (t2 / half)
    let predicted = compute8 + network
    let stamp = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm")
    let lines =
        [ "# Data-parallel scaling (W1's model, global batch 4096, Trainer with a World)"
          ""
          $"Medians over {rounds} alternated rounds of {iterations} iterations (after {warmup} of warm-up) each, measured {stamp} UTC on this machine ({Environment.ProcessorCount} cores), float32, Open MPI over shared memory."
          ""
          "| configuration | ms per iteration (median) |"
          "|---|---|"
          yield! configurations |> List.map (fun c -> $"| {c.Label} | {iteration c.Label:F1} |")
          ""
          $"- **Speedup of 2 ranks over 1 (one thread each): {speedup:F2}×, scaling efficiency {100.0 * speedup / 2.0:F0}%%.**"
          $"- The collectives of one iteration, timed alone (gradient allreduce of {bytes:F0} bytes in one bucket, and the trainer's two agreements): {collectives:F3} ms, **{100.0 * collectives / t2:F2}%% of the 2-rank iteration**. The rest of the gap to 2× is computation: one rank alone on its half batch takes {half:F1} ms, with the other rank running {t2:F1} ms ({t2 / half:F2}×: the two ranks share the machine's memory bandwidth and caches), and half the batch is not quite half the work ({half:F1} ms vs {t1 / 2.0:F1} ms).";
          $"- One process at 2 threads: {t1x2:F1} ms, so on one machine 2 ranks are {t1x2 / t2:F2}× as fast as 2 threads.";
          ""
          "## Paper estimate: 8 ranks on 4 machines (2 per machine, one thread each)"
          ""
          $"Each rank computes 512 rows: {eighth:F1} ms alone here, times the measured slowdown of two ranks on one machine ({t2 / half:F2}×) = {compute8:F1} ms. The network: a ring allreduce of the {bytes:F0} gradient bytes over p = 8 takes 2(p−1)·α + 2(p−1)/p·S/β and each of the two small agreements 2·log2(p)·α; at α = 50 µs per message (TCP over Ethernet) and β = 10 Gb/s that is {1000.0 * ring:F2} + {1000.0 * agreements:F2} = {network:F2} ms. Predicted iteration {predicted:F1} ms against {t1:F1} ms for one rank: speedup {t1 / predicted:F1}× on 8 ranks, efficiency {100.0 * t1 / predicted / 8.0:F0}%%. The messages are latency-bound (18 KB of gradients): a faster interconnect (α = 5 µs) would take the network share from {100.0 * network / predicted:F0}%% to about {100.0 * network / 10.0 / (compute8 + network / 10.0):F0}%%." ]
    Directory.CreateDirectory out |> ignore
    let file = Path.Combine(out, "distributed.md")
    File.WriteAllLines(file, lines)
    for l in lines do printfn "%s" l
    printfn "written %s" file
    0
