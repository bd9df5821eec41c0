// Side by side with the peers (loaded by build.fsx: `dotnet fsi build.fsx bench side-by-side [--workload w1|w2|w5|cnf|ball]
// [--rounds N] [--threads T] [--iterations N] [--batch B --width W]` (W3: W1 at another batch or width); w2:
// torchdiffeq's odeint_adjoint with dopri5 at 1e-5, w2_dopri5_adjoint.py; cnf: torchdyn's FFJORD-style CNF, w7_cnf_torchdyn.py, against
// ours, the same model). This VM's speed drifts 1.5–2× over minutes, so a figure compared
// with an old figure proves nothing: here the peer (W1: torchdiffeq, ../shared/bench-peers/w1_rk4_autograd.py; W5:
// torchdyn's Galerkin model, w5_torchdyn_galerkin.py) and the library (the benchmark binary's `profile --workload
// w1|w5`, the same model) run alternately, round by round, in the same minutes, and each
// round's ratio ours / peer is reported, with the median and the best (min over min). Never part of the tests; it
// skips with a message where Debian's PyTorch or the peers are absent (see ../shared/bench-peers/README.md).
module SideBySide

#load "../Scripts/Exec.fsx"

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Text.RegularExpressions

/// One round's medians and minima (milliseconds per iteration).
type Round =
    { Index: int; PeerMedian: float; PeerMin: float; OursMedian: float; OursMin: float; PeerFirst: bool
      /// W2: (peer, ours) median ms per function evaluation with the median evaluations per iteration.
      PerEvaluation: ((float * float) * (float * float)) option }

/// Runs a program, returning its exit code and output; a round that hangs is killed after an hour.
let private exec = Exec.run false (TimeSpan.FromHours 1.0)

/// Why the side-by-side run cannot happen here, or None.
let missing (peersScripts: string) (peersDir: string) (script: string) (library: string) =
    if not (File.Exists "/usr/bin/python3") then Some "no /usr/bin/python3"
    elif not (File.Exists(Path.Combine(peersScripts, script))) then Some $"no {script} in {peersScripts}"
    elif not (Directory.Exists(Path.Combine(peersDir, library))) then Some $"no {library} in {peersDir} (run setup_peers.sh)"
    else
        let code, _ = exec "." [] "/usr/bin/python3" [ "-c"; "import torch" ]
        if code <> 0 then Some "Debian's PyTorch is not installed (apt-get install python3-torch libopenblas0-openmp)" else None

/// Runs `rounds` alternating rounds of a workload (w1, w5 or cnf) and writes a markdown table to
/// `out`/side-by-side-<workload>-<threads>t.md.
let run (root: string) (benchmarks: string) (out: string) (workload: string) (rounds: int) (threads: int) (iterations: int) (batch: int) (width: int) =
    // W3 is W1 at another batch size or width: both sides take --batch and --width.
    let sizes = if workload = "w1" && (batch <> 1024 || width <> 64) then [ "--batch"; string batch; "--width"; string width ] else []
    let large = batch * width > 1024 * 64 * 4
    // The peer's warm-up: W7's iterations are long (an adaptive solve and its adjoint), so fewer warm-up rounds.
    let warmup = if workload = "cnf" || workload = "ball" then 10 elif large then 3 else 20
    let script, library, peerName =
        match workload with
        | "w1" -> "w1_rk4_autograd.py", "torchdiffeq", "torchdiffeq"
        | "w2" -> "w2_dopri5_adjoint.py", "torchdiffeq", "torchdiffeq (adjoint)"
        | "w5" -> "w5_torchdyn_galerkin.py", "torchdyn", "torchdyn"
        | "cnf" -> "w7_cnf_torchdyn.py", "torchdyn", "torchdyn (CNF)"
        | "ball" -> "w11_events_torchdiffeq.py", "torchdiffeq", "torchdiffeq (odeint_event)"
        | other -> failwithf "--workload %s: expected w1, w2, w5, cnf or ball." other
    // W11's script runs two parts; the ball is its events part.
    let part = if workload = "ball" then [ "--part"; "events" ] else []
    let peersScripts =
        match Environment.GetEnvironmentVariable "BENCH_PEERS_SCRIPTS" with
        | null | "" -> Path.GetFullPath(Path.Combine(root, "..", "shared", "bench-peers"))
        | dir -> dir
    let peersDir = match Environment.GetEnvironmentVariable "PEERS_DIR" with null | "" -> "/tmp/peers" | dir -> dir
    match missing peersScripts peersDir script library with
    | Some why ->
        printfn "side-by-side skipped: %s. See ../shared/bench-peers/README.md." why
        0
    | None ->
    Directory.CreateDirectory out |> ignore
    let peer (index: int) =
        let results = Path.Combine(out, "side-by-side-peer", $"round-{index}")
        // A folder of its own each run: an earlier run's (or workload's) JSON must not be read as this one's.
        if Directory.Exists results then Directory.Delete(results, true)
        let env = [ "BENCH_THREADS", string threads; "RESULTS_DIR", results; "PEERS_DIR", peersDir ]
        let code, text =
            exec peersScripts env "/usr/bin/python3"
                ([ script; "--iters"; string (iterations + warmup); "--warmup"; string warmup; "--timed"; string iterations; "--tag"; $"round{index}" ] @ part @ sizes)
        if code <> 0 then failwithf "the peer failed (exit %d):\n%s" code text
        let file = Directory.GetFiles(results, "*.json") |> Array.exactlyOne
        use doc = JsonDocument.Parse(File.ReadAllText file)
        // The timing summary is the object holding median_ms (its key differs between scripts' versions).
        let rec find (e: JsonElement) =
            match e.ValueKind with
            | JsonValueKind.Object ->
                match e.TryGetProperty "median_ms" with
                | true, m -> Some(m.GetDouble(), e.GetProperty("min_ms").GetDouble())
                | _ -> e.EnumerateObject() |> Seq.tryPick (fun p -> find p.Value)
            | _ -> None
        // W2's script also reports the median time per function evaluation and the evaluations per iteration.
        let perEvaluation =
            match doc.RootElement.TryGetProperty "ms_per_nfe_window_median", doc.RootElement.TryGetProperty "nfe_forward_window", doc.RootElement.TryGetProperty "nfe_backward_window" with
            | (true, ms), (true, f), (true, b) -> Some(ms.GetDouble(), f.GetProperty("median").GetDouble() + b.GetProperty("median").GetDouble())
            | _ -> None
        match find doc.RootElement with
        | Some(median, min) -> (median, min), perEvaluation
        | None -> failwithf "no median_ms in %s" file
    let ours () =
        let code, text = exec root [] "dotnet" ([ benchmarks; "profile"; "--workload"; workload; "--iterations"; string iterations; "--threads"; string threads ] @ sizes)
        if code <> 0 then failwithf "the library's benchmark failed (exit %d):\n%s" code text
        let m = Regex.Match(text, @"median ([0-9.]+) ms, min ([0-9.]+) ms")
        if not m.Success then failwithf "no median in the benchmark's output:\n%s" text
        let e = Regex.Match(text, @"per evaluation median ([0-9.]+) ms, evaluations median ([0-9.]+)")
        let perEvaluation = if e.Success then Some(float e.Groups[1].Value, float e.Groups[2].Value) else None
        (float m.Groups[1].Value, float m.Groups[2].Value), perEvaluation
    let results =
        [ for i in 1 .. rounds do
            let peerFirst = i % 2 = 1
            let ((pm, pmin), pe), ((om, omin), oe) =
                if peerFirst then let p = peer i in p, ours ()
                else let o = ours () in peer i, o
            printfn "round %d (%s first): peer %.1f ms, ours %.1f ms, ratio %.2f" i (if peerFirst then "peer" else "ours") pm om (om / pm)
            let perEvaluation = match pe, oe with Some p, Some o -> Some(p, o) | _ -> None
            perEvaluation |> Option.iter (fun ((p, pn), (o, on)) ->
                printfn "  per evaluation: peer %.3f ms (%g evaluations), ours %.3f ms (%g), ratio %.2f" p pn o on (o / p))
            yield { Index = i; PeerMedian = pm; PeerMin = pmin; OursMedian = om; OursMin = omin; PeerFirst = peerFirst; PerEvaluation = perEvaluation } ]
    let ratios = results |> List.map (fun r -> r.OursMedian / r.PeerMedian) |> List.sort
    let medianRatio = ratios[ratios.Length / 2]
    let best = (results |> List.map (fun r -> r.OursMin) |> List.min) / (results |> List.map (fun r -> r.PeerMin) |> List.min)
    let row (r: Round) =
        let first = if r.PeerFirst then "peer" else "ours"
        $"| {r.Index} | {first} | {r.PeerMedian:F1} | {r.OursMedian:F1} | {r.OursMedian / r.PeerMedian:F2} |"
    let lines =
        [ yield $"# {workload.ToUpperInvariant()} side by side: NeuralOde against {peerName}, alternating rounds"
          yield ""
          if not sizes.IsEmpty then yield $"W3 configuration: batch {batch}, width {width}."
          yield $"{threads} thread(s), {iterations} timed iterations per side per round; the peer is Debian's PyTorch with {peerName} (../shared/bench-peers/{script}). Ratios below 1 mean NeuralOde is faster."
          yield ""
          yield "| round | first | peer median (ms) | ours median (ms) | ours / peer |"
          yield "|---|---|---|---|---|"
          yield! results |> List.map row
          yield ""
          yield $"Median of the per-round ratios: **{medianRatio:F2}**; best against best (min over min): **{best:F2}**."
          let perEvaluation = results |> List.choose (fun r -> r.PerEvaluation |> Option.map (fun e -> r.Index, e))
          if not perEvaluation.IsEmpty then
            let ratios = perEvaluation |> List.map (fun (_, ((p, _), (o, _))) -> o / p) |> List.sort
            yield ""
            yield "Per function evaluation (forward and backward; each side's median over its iterations of time / evaluations):"
            yield ""
            yield "| round | peer ms / evaluation (evaluations) | ours ms / evaluation (evaluations) | ours / peer |"
            yield "|---|---|---|---|"
            for i, ((p, pn), (o, on)) in perEvaluation do
                yield $"| {i} | {p:F3} ({pn:G4}) | {o:F3} ({on:G4}) | {o / p:F2} |"
            yield ""
            yield $"Median of the per-round ratios per evaluation: **{ratios[ratios.Length / 2]:F2}**." ]
    let suffix = if sizes.IsEmpty then "" else $"-b{batch}-w{width}"
    let file = Path.Combine(out, $"side-by-side-{workload}{suffix}-{threads}t.md")
    File.WriteAllLines(file, lines)
    printfn "median ratio %.2f, best %.2f; table in %s" medianRatio best file
    0
