// NeuralOde build script: `dotnet fsi build.fsx <target>`.
//   build   restore and build the solution (Release)
//   test    every F# (Expecto) and C# (xunit) test (those that train also under oneDNN limited to AVX2 and on one
//           thread), the paper's experiments in quick mode (under oneDNN's default ISA and AVX2, at 1 and 2 threads),
//           the code blocks of the README and of docs/ (tests/Readme/), the derivation scripts
//           (paper-appendix/derivations/), the tutorials in quick mode (docs/tutorials/), the docs site built and its
//           links checked (tests/Docs/), the consumer apps and script (tests/Consumers/), and the `mpirun -np 2`
//           scenarios (tests/Mpi/: data-parallel training, ensembles, failures; Open MPI installed first where it is
//           missing, as root with apt-get), then one line
//           `N passed, N failed`; non-zero exit on any failure
//   docs    the documentation site (fsdocs: docs/ and the API reference of both assemblies) to out/docs/, its links
//           checked; the tutorials' figures from out/tutorials/ (run in quick mode first when absent; `docs full`
//           runs them at full size); `--root /PREFIX/` for a site served under a prefix (default /)
//   demo    the main job: the paper's reflection experiments (Fig. 3, Fig. 5, g_1d), figures to out/demo/
//   bench   the benchmark project (not part of test); tables to out/bench/; `bench side-by-side` against the peers;
//           `bench distributed [--rounds N] [--iterations N] [--quick]` data-parallel scaling at 1 and 2 ranks (mpirun)
//   pack    NuGet packages to out/packages/, then the consumers of `test` (tests/Consumers/) against a fresh pack
//   appendix  the paper's experiments: `appendix` lists them, `appendix NAME [quick]` runs one, `appendix all`
//           runs every one and the derivation scripts; figures and results.md in paper-appendix/output/
//   clean   remove out/ and every bin/ and obj/
// Arguments after the target go to the program it runs (test: to the Expecto runner; bench: to the benchmarks).
open System
open System.Diagnostics
open System.IO
open System.Xml.Linq

#load "tests/Scripts/Exec.fsx"
#load "tests/Consumers/Consumers.fsx"
#load "tests/Readme/ReadmeSnippets.fsx"
#load "tests/Docs/DocsSite.fsx"
#load "tests/Mpi/MpiRuns.fsx"
#load "tests/NeuralOde.Benchmarks/SideBySide.fsx"
#load "tests/NeuralOde.Benchmarks/Scaling.fsx"

type Target =
    | Build
    | Test
    | Demo
    | Bench
    | Pack
    | Appendix
    | Docs
    | Clean

let root = __SOURCE_DIRECTORY__
let outDir = Path.Combine(root, "out")
let configuration = "Release"

let run (workDir: string) (program: string) (args: string list) =
    let psi = ProcessStartInfo(program, args, WorkingDirectory = workDir, UseShellExecute = false)
    psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] <- "1"
    psi.Environment["DOTNET_NOLOGO"] <- "1"
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

let dotnet args = run root "dotnet" args

let require what code =
    if code <> 0 then
        eprintfn "build.fsx: %s failed (exit code %d)" what code
        exit code

let build () = dotnet [ "build"; "NeuralOde.sln"; "-c"; configuration; "-nologo"; "-v"; "minimal" ] |> require "build"

let binary (project: string) (name: string) = Path.Combine(root, project, "bin", configuration, "net10.0", name)

/// Passed and failed counts of an Expecto JUnit summary (skipped tests count as neither).
let junitCounts (file: string) =
    let cases = XDocument.Load(file).Descendants(XName.Get "testcase") |> List.ofSeq
    let failed = cases |> List.filter (fun c -> c.Elements() |> Seq.exists (fun e -> e.Name.LocalName = "failure" || e.Name.LocalName = "error"))
    let skipped = cases |> List.filter (fun c -> c.Elements() |> Seq.exists (fun e -> e.Name.LocalName = "skipped"))
    cases.Length - failed.Length - skipped.Length, failed.Length, skipped.Length

/// Passed and failed counts of a TRX file.
let trxCounts (file: string) =
    let counters = XDocument.Load(file).Descendants() |> Seq.find (fun e -> e.Name.LocalName = "Counters")
    let get (n: string) = match counters.Attribute(XName.Get n) with null -> 0 | a -> int a.Value
    get "passed", get "failed" + get "error" + get "timeout" + get "aborted", get "notExecuted"

let test (extra: string list) =
    build ()
    let results = Path.Combine(outDir, "test")
    if Directory.Exists results then Directory.Delete(results, true)
    Directory.CreateDirectory results |> ignore
    let junit = Path.Combine(results, "fsharp-junit.xml")
    printfn "== F# tests (Expecto) =="
    let fsCode =
        // Sequenced: TorchSharp 0.107's tensor–number operators (x * 0.5, a + b) pass a temporary Scalar that a
        // garbage collection started by another thread can free while libtorch reads it (see
        // docs/troubleshooting.md); tests in parallel made that happen a few times a run. One test at a time, no other
        // thread allocates while one is inside libtorch.
        run root "dotnet" ([ binary "tests/NeuralOde.Core.Tests" "NeuralOde.Core.Tests.dll"; "--no-spinner"; "--sequenced"
                             "--colours"; "0"; "--junit-summary"; junit ] @ extra)
    // The F# tests that train (Training, Models, FieldBackends) again with oneDNN limited to AVX2 and on one thread (with the
    // main run, each ISA and each thread count once; the experiments run all four pairs). About half a minute each.
    let trainingRuns =
        [ "oneDNN limited to AVX2, 2 threads", [ "ONEDNN_MAX_CPU_ISA", "AVX2"; "NEURALODE_TEST_THREADS", "2" ]
          "default ISA, 1 thread", [ "NEURALODE_TEST_THREADS", "1" ] ]
        |> List.mapi (fun i (label, environment) ->
            [ for list in [ "Training"; "Models"; "FieldBackends" ] ->
                printfn "== F# tests that train (%s), %s ==" list label
                let file = Path.Combine(results, $"fsharp-junit-{i}-{list}.xml")
                let code, output =
                    Exec.run false (TimeSpan.FromMinutes 15.0) root environment "dotnet"
                        [ binary "tests/NeuralOde.Core.Tests" "NeuralOde.Core.Tests.dll"; "--no-spinner"; "--sequenced"
                          "--colours"; "0"; "--filter"; list; "--junit-summary"; file ]
                if code <> 0 then printfn "%s" output
                $"F# {list}, {label}", file, code ])
        |> List.concat
    printfn "== C# tests (xunit) =="
    let csCode =
        dotnet [ "test"; "tests/NeuralOde.Tests/NeuralOde.Tests.csproj"; "-c"; configuration; "--no-build"; "--nologo"
                 "--logger"; "trx;LogFileName=csharp.trx"; "--results-directory"; results ]
    let count name file reader code =
        if File.Exists file then
            let passed, failed, skipped = reader file
            printfn "%s: %d passed, %d failed, %d skipped (runner exit code %d)" name passed failed skipped code
            // A runner that crashed after writing its file still fails the run.
            passed, (if failed = 0 && code <> 0 then 1 else failed)
        else
            printfn "%s: no results file (runner exit code %d); counted as one failure" name code
            0, 1
    // Each configuration of the machine's CPU features and thread counts the experiments must train under: oneDNN
    // at its default ISA and limited to AVX2 (ONEDNN_MAX_CPU_ISA), one and two threads. The default run writes the
    // figures; the others must pass too (training that diverges on another instruction set or thread count fails).
    let configurations =
        [ "default ISA, 2 threads", [], "2"
          "oneDNN limited to AVX2, 2 threads", [ "ONEDNN_MAX_CPU_ISA", "AVX2" ], "2"
          "default ISA, 1 thread", [], "1"
          "oneDNN limited to AVX2, 1 thread", [ "ONEDNN_MAX_CPU_ISA", "AVX2" ], "1" ]
    let experimentRuns =
        configurations |> List.mapi (fun i (label, environment, threads) ->
            printfn "== The paper's experiments, quick mode (paper-appendix/Experiments), %s ==" label
            let experimentOutput = Path.Combine(outDir, (if i = 0 then "appendix-quick" else $"appendix-quick-{i}"))
            let experimentCode, experimentOutputText =
                Exec.run (i = 0) (TimeSpan.FromMinutes 30.0) root environment "dotnet"
                    [ binary "paper-appendix/Experiments" "NeuralOde.Appendix.dll"; "all"; "quick"; "--out"; experimentOutput; "--threads"; threads ]
            let experimentLines = experimentOutputText.Split('\n') |> Array.map (fun l -> l.TrimEnd('\r')) |> List.ofArray
            let experimentVerdicts = experimentLines |> List.filter (fun l -> l.StartsWith "experiment ")
            let experimentsPassed = experimentVerdicts |> List.filter (fun l -> l.EndsWith ": passed") |> List.length
            // Every experiment announced must report; one that never does (the process died) fails, and so does a
            // non-zero exit with nothing failed (at least one failure).
            let expected =
                experimentLines |> List.tryPick (fun l -> if l.StartsWith "experiments to run: " then Some(int (l.Substring 20)) else None)
                |> Option.defaultValue 1
            let experimentsFailed =
                let missingOrFailed = max 0 (expected - experimentsPassed)
                if missingOrFailed = 0 && experimentCode <> 0 then 1 else missingOrFailed
            if i > 0 then
                for l in experimentVerdicts do printfn "%s" l
                if experimentsFailed > 0 then printfn "%s" experimentOutputText
            printfn "Experiments (quick, %s): %d passed, %d failed" label experimentsPassed experimentsFailed
            label, experimentsPassed, experimentsFailed)
    let experimentsPassed = experimentRuns |> List.sumBy (fun (_, p, _) -> p)
    let experimentsFailed = experimentRuns |> List.sumBy (fun (_, _, f) -> f)
    printfn "== Derivation scripts (paper-appendix/derivations: the paper's worked examples, derived and checked) =="
    let derivations =
        Directory.GetFiles(Path.Combine(root, "paper-appendix", "derivations"), "*.fsx")
        |> Array.sort
        |> Array.map (fun script ->
            let code, output = Exec.run false (TimeSpan.FromMinutes 5.0) root [] "dotnet" [ "fsi"; script ]
            let name = Path.GetFileName script
            printfn "derivation %s: %s" name (if code = 0 then "passed" else "FAILED")
            if code <> 0 then printfn "%s" output
            code = 0)
    let derivationsPassed = derivations |> Array.filter id |> Array.length
    let derivationsFailed = derivations.Length - derivationsPassed
    printfn "== Tutorials (docs/tutorials, quick mode; each checks its claim) =="
    let figures = Path.Combine(outDir, "tutorials")
    let tutorials = DocsSite.runTutorials root figures true
    printfn "== Docs site (fsdocs: docs/ and the API reference, every link resolved) =="
    let site =
        try DocsSite.build root (Path.Combine(outDir, "docs")) figures "/"
        with e -> [ { DocsSite.Name = "docs site"; DocsSite.Passed = false; DocsSite.Output = e.Message } ]
    for o in site do
        printfn "%s: %s" o.Name (if o.Passed then "passed" else "FAILED")
        if not o.Passed then printfn "%s" o.Output
    let docsOutcomes = tutorials @ site
    let docsPassed = docsOutcomes |> List.filter (fun o -> o.Passed) |> List.length
    let docsFailed = docsOutcomes.Length - docsPassed
    printfn "== Code blocks of the README and docs/ (each C# block a program, each F# block a script) =="
    let snippets =
        try ReadmeSnippets.run root (Path.Combine(outDir, "readme"))
        with e ->
            printfn "README blocks: %s" e.Message
            [ { ReadmeSnippets.Name = "README blocks"; ReadmeSnippets.Passed = false; ReadmeSnippets.Output = e.Message } ]
    printfn "== Consumers (the packed packages, from a fresh C# app, F# app and F# script) =="
    let consumers =
        try Consumers.run root configuration (Path.Combine(outDir, "consumers"))
        with e ->
            printfn "consumers: %s" e.Message
            [ { Consumers.Name = "pack"; Consumers.Passed = false; Consumers.Seconds = 0.0; Consumers.Output = e.Message } ]
    printfn "== mpirun -np 2 (tests/Mpi: data-parallel training, ensembles, failures) =="
    let mpiRuns =
        try MpiRuns.run root configuration (Path.Combine(outDir, "mpi"))
        with e ->
            printfn "mpirun tests: %s" e.Message
            [ { MpiRuns.Name = "mpirun tests"; MpiRuns.Passed = false; MpiRuns.Output = e.Message } ]
    // The scaling benchmark in quick mode (one round, 2 iterations each): it runs and writes its table.
    let mpiRuns =
        if mpiRuns |> List.exists (fun o -> o.Name = "Open MPI") then mpiRuns
        else
            let code = Scaling.run (binary "tests/NeuralOde.Benchmarks" "NeuralOde.Benchmarks.dll") (Path.Combine(outDir, "mpi", "scaling")) 1 2 1
            printfn "mpirun: the scaling benchmark in quick mode (bench distributed --quick): %s" (if code = 0 then "passed" else "FAILED")
            mpiRuns @ [ { MpiRuns.Name = "scaling benchmark, quick"; MpiRuns.Passed = (code = 0); MpiRuns.Output = "" } ]
    let mpiPassed = mpiRuns |> List.filter (fun o -> o.Passed) |> List.length
    let mpiFailed = mpiRuns.Length - mpiPassed
    let fsPassed, fsFailed =
        [ yield count "F#" junit junitCounts fsCode
          for name, file, code in trainingRuns -> count name file junitCounts code ]
        |> List.reduce (fun (p1, f1) (p2, f2) -> p1 + p2, f1 + f2)
    let csPassed, csFailed = count "C#" (Path.Combine(results, "csharp.trx")) trxCounts csCode
    let consumersPassed = consumers |> List.filter (fun o -> o.Passed) |> List.length
    let consumersFailed = consumers.Length - consumersPassed
    for o in consumers do printfn "consumer %s: %s (%.0f s)" o.Name (if o.Passed then "passed" else "FAILED") o.Seconds
    printfn "Consumers: %d passed, %d failed" consumersPassed consumersFailed
    let snippetsPassed = snippets |> List.filter (fun o -> o.Passed) |> List.length
    let snippetsFailed = snippets.Length - snippetsPassed
    for o in snippets |> List.filter (fun o -> not o.Passed) do printfn "FAILED: %s" o.Name
    printfn "README and docs blocks: %d passed, %d failed" snippetsPassed snippetsFailed
    printfn "Tutorials and docs site: %d passed, %d failed" docsPassed docsFailed
    for label, p, f in experimentRuns do printfn "Experiments (quick, %s): %d passed, %d failed" label p f
    printfn "Derivation scripts: %d passed, %d failed" derivationsPassed derivationsFailed
    printfn "mpirun -np 2: %d passed, %d failed" mpiPassed mpiFailed
    let passed = fsPassed + csPassed + consumersPassed + snippetsPassed + experimentsPassed + derivationsPassed + docsPassed + mpiPassed
    let failed = fsFailed + csFailed + consumersFailed + snippetsFailed + experimentsFailed + derivationsFailed + docsFailed + mpiFailed
    printfn "%d passed, %d failed" passed failed
    if failed > 0 then exit 1

/// The main job: the paper's reflection experiments at full size (about a minute on 2 cores). φ(x) = −x cannot be a
/// Neural ODE flow in 1-D; data control (Fig. 3), adaptive depth (Fig. 5) and one augmented dimension (ANODE's g_1d)
/// each learn it. Figures and results.md per experiment in out/demo/ (or the folder given).
let demo (extra: string list) =
    dotnet [ "build"; "paper-appendix/Experiments/Experiments.fsproj"; "-c"; configuration; "-nologo"; "-v"; "minimal" ] |> require "build of the experiments"
    let out = match extra with dir :: _ -> dir | [] -> Path.Combine(outDir, "demo")
    printfn "NeuralOde demo: the reflection φ(x) = −x, which no 1-D Neural ODE flow can represent (trajectories cannot"
    printfn "cross), learned three ways from Dissecting Neural ODEs: data control, adaptive depth, augmentation."
    run root "dotnet" [ binary "paper-appendix/Experiments" "NeuralOde.Appendix.dll"; "figure3"; "figure5"; "g1d"; "--out"; out ]
    |> require "demo"
    printfn "What it shows: the vanilla NODE's error stays at the flow bound while the three fixes fit the reflection;"
    printfn "the figures in %s show why (crossing trajectories under data control, per-input depths, the augmented" out
    printfn "dimension). More experiments: dotnet fsi build.fsx appendix"

let bench (extra: string list) =
    dotnet [ "build"; "tests/NeuralOde.Benchmarks/NeuralOde.Benchmarks.fsproj"; "-c"; configuration; "-nologo"; "-v"; "minimal" ] |> require "build of the benchmarks"
    match extra with
    | "distributed" :: options ->
        let option name fallback = match options |> List.skipWhile ((<>) name) with _ :: v :: _ -> int v | _ -> fallback
        let quick = List.contains "--quick" options
        MpiRuns.ensureOpenMpi () |> Option.iter (fun why -> eprintfn "build.fsx: %s" why; exit 1)
        Scaling.run (binary "tests/NeuralOde.Benchmarks" "NeuralOde.Benchmarks.dll") (Path.Combine(outDir, "bench"))
            (option "--rounds" (if quick then 1 else 3)) (option "--iterations" (if quick then 3 else 30)) (if quick then 1 else 5)
        |> require "distributed"
    | "side-by-side" :: options ->
        let text name fallback = match options |> List.skipWhile ((<>) name) with _ :: v :: _ -> v | _ -> fallback
        let option name fallback = int (text name (string fallback))
        SideBySide.run root (binary "tests/NeuralOde.Benchmarks" "NeuralOde.Benchmarks.dll") (Path.Combine(outDir, "bench"))
            (text "--workload" "w1") (option "--rounds" 4) (option "--threads" 2) (option "--iterations" 100)
            (option "--batch" 1024) (option "--width" 64)
        |> require "side-by-side"
    | _ ->
    run root "dotnet" ((binary "tests/NeuralOde.Benchmarks" "NeuralOde.Benchmarks.dll" :: extra) @ [ "--out"; Path.Combine(outDir, "bench") ])
    |> require "benchmarks"

/// Release packages (the version in Directory.Build.props) to out/packages/, then every consumer of `test`.
let pack () =
    let packages = Path.Combine(outDir, "packages")
    for project in [ "src/NeuralOde.Core/NeuralOde.Core.fsproj"; "src/NeuralOde/NeuralOde.csproj" ] do
        dotnet [ "pack"; project; "-c"; configuration; "-o"; packages; "-nologo"; "-v"; "minimal" ] |> require $"pack {project}"
    printfn "packages in %s" packages
    let outcomes = Consumers.run root configuration (Path.Combine(outDir, "consumers"))
    if outcomes |> List.exists (fun o -> not o.Passed) then exit 1

/// The paper's experiments (paper-appendix/Experiments): `appendix` lists them, `appendix NAME... [quick]` runs
/// those, `appendix all [quick]` runs every experiment and then the derivation scripts of paper-appendix/derivations.
let appendix (extra: string list) =
    build ()
    let experiments = binary "paper-appendix/Experiments" "NeuralOde.Appendix.dll"
    let args = if extra.IsEmpty then [ "list" ] else extra
    run root "dotnet" (experiments :: args) |> require "the experiments"
    if List.contains "all" extra then
        let scripts = Directory.GetFiles(Path.Combine(root, "paper-appendix", "derivations"), "*.fsx") |> Array.sort
        for script in scripts do
            printfn "== %s ==" (Path.GetRelativePath(root, script))
            run root "dotnet" [ "fsi"; script ] |> require script

/// The documentation site to out/docs/ (see the header); exits 1 when it does not build or a link is broken.
let docs (extra: string list) =
    build ()
    let figures = Path.Combine(outDir, "tutorials")
    let full = List.contains "full" extra
    let missing = not (Directory.Exists figures) || Directory.GetFiles(figures, "*.png").Length < (DocsSite.tutorials root).Length
    if full || missing then
        let outcomes = DocsSite.runTutorials root figures (not full)
        if outcomes |> List.exists (fun o -> not o.Passed) then exit 1
    let prefix = match extra |> List.skipWhile ((<>) "--root") with _ :: p :: _ -> p | _ -> "/"
    let site = Path.Combine(outDir, "docs")
    let outcomes = DocsSite.build root site figures prefix
    for o in outcomes do
        printfn "%s: %s" o.Name (if o.Passed then "passed" else "FAILED")
        if not o.Passed then printfn "%s" o.Output
    if outcomes |> List.exists (fun o -> not o.Passed) then exit 1
    printfn "site in %s (serve it, e.g. `python3 -m http.server -d %s`, and open http://localhost:8000%s)" site site prefix

let clean () =
    if Directory.Exists outDir then Directory.Delete(outDir, true)
    for dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories) |> Array.ofSeq do
        let name = Path.GetFileName dir
        if (name = "bin" || name = "obj") && Directory.Exists dir && not (dir.Contains "/.git/") then Directory.Delete(dir, true)

let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray
let targets =
    [ "build", Build; "test", Test; "demo", Demo; "bench", Bench; "pack", Pack; "appendix", Appendix; "docs", Docs; "clean", Clean ]
match args with
| name :: extra ->
    match targets |> List.tryFind (fun (n, _) -> n = name) with
    | Some(_, Build) -> build ()
    | Some(_, Test) -> test extra
    | Some(_, Demo) -> demo extra
    | Some(_, Bench) -> bench extra
    | Some(_, Pack) -> pack ()
    | Some(_, Appendix) -> appendix extra
    | Some(_, Docs) -> docs extra
    | Some(_, Clean) -> clean ()
    | None ->
        eprintfn "Unknown target '%s'. Targets: %s" name (targets |> List.map fst |> String.concat ", ")
        exit 2
| [] ->
    eprintfn "Usage: dotnet fsi build.fsx <target>. Targets: %s" (targets |> List.map fst |> String.concat ", ")
    exit 2
