/// Benchmarks (run by `dotnet fsi build.fsx bench [command] [options]`, never by the tests). Float32, 2 threads,
/// fixed seeds; each writes out/bench/<command>.md and .json.
///   w1     [--repeats N]     W1 iteration, its measured floor (Floor.fs) and the ratio; a plain RK4 loop for reference
///   kernels                  W1's kernels one by one (2 threads and 1), their sum per iteration, the floor's ratio to it
///   w2     [--repeats N]     Dopri5 + adjoint iteration, forward/backward evaluations, forward error
///   w3                       W1 at batch 256 … 16384 and width 64 … 1024
///   w4                       peak memory vs steps: autograd, the adjoint and the compiled adjoint (PeakMemory.fs; one process per pass)
///   w5     [--repeats N]     the peer's Galerkin model (GalLinear(2, 64) first), RK4 × 20, autograd
///   w6     [--repeats N]     solve-only throughput of a 10,000-dimensional linear ODE with Dopri5
///   memory [--iterations N]  W1 for N iterations (default 10,000): RSS flat after warm-up (growth < 5%)
///   symbolic-w2  [--repeats N]  W2 with the adjoint's VJPs compiled symbolically vs by autograd (ratio, one run)
///   symbolic-cnf [--repeats N]  a CNF's exact trace, closed-form symbolic vs autograd, d = 2, 16, 64
///   hypersolver  [--repeats N]  a trained hyper-Euler vs Euler at equal accuracy on a trained Neural ODE (ratio, one run)
///   all                      all of the above
///   distributed [--batch B --iterations N --warmup N --rank-threads T]   (under mpirun; `build.fsx bench distributed` runs it at 1
///                            and 2 ranks) W1's model trained data-parallel at a global batch (default 4096), one
///                            thread per rank: rank 0 prints its median iteration and the collectives' time alone
///   peak --method M --steps N [--warm]   (internal) one W4 pass
///   profile --workload w1|w1-generic|floor|plain|w2|w2-generic|w5|w5-generic|cnf|ball|robertson|robertson-rodas4|robertson-auto [--iterations N] [--batch B --width W (w1, w1-generic)]   one of W1's three variants (or W5) alone, N iterations (default
///                            500), for an external profiler (perf record/stat): prints its median and min
/// `--device cuda` (or cuda:N) runs W1, W2, W3 and W5 on that GPU (a CUDA libtorch backend must be present); W4, W6
/// and memory stay on the CPU. Every iteration ends by reading the loss on the host, so times include the GPU's work.
module NeuralOde.Benchmarks.Program

open TorchSharp
open NeuralOde.Benchmarks.Report

let private option (args: string list) (name: string) (fallback: string) =
    match args |> List.skipWhile ((<>) name) with
    | _ :: value :: _ -> value
    | _ -> fallback

[<EntryPoint>]
let main argv =
    let args = List.ofArray argv
    let out = option args "--out" "out/bench"
    // Two threads is the benchmark's setting (the reference was measured so); --threads N is for exploration only.
    torch.set_num_threads (int (option args "--threads" "2"))
    let deviceName = option args "--device" "cpu"
    if deviceName <> "cpu" then
        if deviceName.StartsWith "cuda" && not (torch.cuda.is_available ()) then
            eprintfn "--device %s: CUDA is not available (torch.cuda.is_available() is false: no GPU, or a CPU-only libtorch backend)." deviceName
            exit 2
        Workloads.device <- torch.device deviceName
    let repeats fallback = int (option args "--repeats" (string fallback))
    let command = match args with c :: _ when not (c.StartsWith "--") -> c | _ -> "all"
    let memory () =
        let rows, ok = MemoryRun.run (int (option args "--iterations" "10000"))
        write out "memory" rows
        ok
    let benchmarks =
        [ "w1", (fun () -> write out "w1" (Timings.w1 (repeats 100)); true)
          "kernels", (fun () -> write out "kernels" (Kernels.table ()); true)
          "w2", (fun () -> write out "w2" (Timings.w2 (repeats 40)); true)
          "w3", (fun () -> write out "w3" (Timings.w3 ()); true)
          "w4", (fun () -> write out "w4" (PeakMemory.w4 ()); true)
          "w5", (fun () -> write out "w5" (Timings.w5 (repeats 60)); true)
          "w6", (fun () -> write out "w6" (Timings.w6 (repeats 20)); true)
          "memory", memory
          "symbolic-w2", (fun () -> write out "symbolic-w2" (SymbolicFields.w2 (repeats 20)); true)
          "symbolic-cnf", (fun () -> write out "symbolic-cnf" (SymbolicFields.cnf (repeats 10)); true)
          "hypersolver", (fun () -> write out "hypersolver" (Hypersolvers.run (repeats 30)); true) ]
    match command with
    | "distributed" ->
        let line = Scaling.run (int (option args "--batch" "4096")) (int (option args "--iterations" "30")) (int (option args "--warmup" "5")) (int (option args "--rank-threads" "1"))
        if line <> "" then printfn "%s" line
        0
    | "peak" ->
        let p = PeakMemory.pass (option args "--method" "adjoint") (int (option args "--steps" "10")) (List.contains "--warm" args)
        printfn "pass %f %f %f %f %f %d" p.PeakRss p.Rss p.Native p.GcHeap p.GcAllocated p.Gen0Collections
        0
    | "profile" ->
        let s = Timings.alone (option args "--workload" "w1") (int (option args "--iterations" "500"))
                              (int (option args "--batch" "1024")) (int (option args "--width" "64"))
        printfn "median %.2f ms, min %.2f ms, %d runs" s.Median s.Min s.Count
        0
    | "all" ->
        let results = benchmarks |> List.map (fun (_, run) -> run ())
        if List.forall id results then 0 else 1
    | name ->
        match benchmarks |> List.tryFind (fst >> (=) name) with
        | Some(_, run) -> if run () then 0 else 1
        | None ->
            eprintfn "Unknown benchmark '%s'. Benchmarks: %s, all." name (benchmarks |> List.map fst |> String.concat ", ")
            2
