// The `mpirun -np 2` tests of the test command: the scenarios of tests/NeuralOde.Mpi.Tests and the C# data-parallel
// example, each under mpirun with a time limit, checked by exit code, time and each rank's own output (mpirun's
// --output-filename: one file per rank). Open MPI is installed first where it is missing (Debian, as root, apt-get).
module MpiRuns

#load "../Scripts/Exec.fsx"

open System
open System.IO

type Outcome = { Name: string; Passed: bool; Output: string }

let private mpirun = "/usr/bin/mpirun"
let private library = "/usr/lib/x86_64-linux-gnu/libmpi.so.40"

/// None when Open MPI is there (installing it when missing and possible); Some reason otherwise.
let ensureOpenMpi () : string option =
    let present () = File.Exists mpirun && File.Exists library
    if present () then None
    else
        let root = Environment.UserName = "root"
        if not root || not (File.Exists "/usr/bin/apt-get") then
            Some "Open MPI is missing and cannot be installed here (not root, or no apt-get). Install it: sudo apt-get install openmpi-bin libopenmpi-dev"
        else
            printfn "Open MPI is missing: installing openmpi-bin and libopenmpi-dev with apt-get"
            let environment = [ ("DEBIAN_FRONTEND", "noninteractive") ]
            let install () =
                Exec.run true (TimeSpan.FromMinutes 10.0) "/" environment "apt-get" [ "install"; "-y"; "--no-install-recommends"; "openmpi-bin"; "libopenmpi-dev" ]
            let code, _ = install ()
            if code <> 0 then
                Exec.run true (TimeSpan.FromMinutes 10.0) "/" environment "apt-get" [ "update" ] |> ignore
                install () |> ignore
            if present () then None else Some "apt-get could not install Open MPI (openmpi-bin, libopenmpi-dev); see its output above."

/// One scenario: its name, the program and arguments after `mpirun -np 2 dotnet`, extra environment, the longest
/// it may take, and the check of (exit code, seconds, rank 0's output, rank 1's output, everything mpirun printed).
type private Scenario =
    { Name: string
      Arguments: string list
      Environment: (string * string) list
      Limit: TimeSpan
      Check: int -> float -> string -> string -> string -> string option }

let private has (text: string) (output: string) = output.Contains(text, StringComparison.Ordinal)

let private scenarios (root: string) (configuration: string) (folder: string) =
    let binary project name = Path.Combine(root, project, "bin", configuration, "net10.0", name)
    let tests = binary "tests/NeuralOde.Mpi.Tests" "NeuralOde.Mpi.Tests.dll"
    let example = binary "examples/DataParallel.CSharp" "DataParallel.CSharp.dll"
    let expect (conditions: (bool * string) list) =
        conditions |> List.tryFind (fst >> not) |> Option.map snd
    let failedJob code seconds (limit: float) =
        [ code <> 0, $"the job should have failed, it exited with {code}"
          code <> 124, "the job hung until the time limit"
          seconds < limit, $"the job took {seconds:F0} s, more than {limit:F0} s: a rank waited too long" ]
    [ { Name = "k ranks train to one process's parameters (autograd, adjoint, interpolated adjoint); progress and checkpoint on rank 0 only"
        Arguments = [ tests; "equality"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 5.0
        Check = fun code _ r0 r1 _ ->
            expect [ code = 0, $"exit code {code}"
                     (r0.Split('\n') |> Array.filter (has ": passed") |> Array.length) = 3, "rank 0: three 'passed' verdicts expected"
                     (r1.Split('\n') |> Array.filter (has ": passed") |> Array.length) = 3, "rank 1: three 'passed' verdicts expected" ] }
      { Name = "an ensemble's results are gathered to rank 0 in member order"
        Arguments = [ tests; "ensemble"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code _ r0 r1 _ ->
            expect [ code = 0, $"exit code {code}"; has "ensemble: passed" r0, "rank 0's verdict"; has "ensemble: passed" r1, "rank 1's verdict" ] }
      { Name = "sums, means and broadcasts of non-contiguous, float32, int64 and view tensors"
        Arguments = [ tests; "collectives"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code _ r0 r1 _ ->
            expect [ code = 0, $"exit code {code}"; has "collectives: passed" r0, "rank 0's verdict"; has "collectives: passed" r1, "rank 1's verdict" ] }
      { Name = "a rank whose loss throws makes every rank raise a named error"
        Arguments = [ tests; "rank-fails"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code seconds r0 r1 _ ->
            expect (failedJob code seconds 120.0 @
                    [ has "raised DistributedException: Rank 1 of 2 failed at epoch 1, iteration 3: InvalidOperationException: injected failure" r0, "rank 0 should name rank 1's failure"
                      has "raised InvalidOperationException: injected failure in rank 1's loss" r1, "rank 1 should raise its own exception" ]) }
      { Name = "ranks with different numbers of batches raise a named error"
        Arguments = [ tests; "batches-differ"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code seconds r0 r1 _ ->
            expect (failedJob code seconds 120.0 @
                    [ has "raised DistributedException: Ranks 1 had no batch left" r0, "rank 0's named error"
                      has "raised DistributedException: Ranks 1 had no batch left" r1, "rank 1's named error" ]) }
      { Name = "an unhandled exception on one rank aborts the job at once, naming the rank"
        Arguments = [ tests; "unhandled"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code seconds r0 _ all ->
            expect (failedJob code seconds 60.0 @
                    [ has "rank 1 of 2 aborts the job: unhandled InvalidOperationException: injected unhandled failure" all, "the abort should name rank 1 and its exception"
                      not (has "completed" r0), "rank 0's barrier should not complete" ]) }
      { Name = "a rank killed by a signal does not leave the other waiting"
        Arguments = [ tests; "crash"; folder ]; Environment = []; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code seconds r0 _ _ -> expect (failedJob code seconds 60.0 @ [ (not (has "completed" r0), "rank 0's barrier should not complete") ]) }
      { Name = "a collective that waits past the timeout raises a named error (rank 1 sleeps 60 s, the timeout is 5 s)"
        Arguments = [ tests; "timeout"; folder ]; Environment = [ ("NEURALODE_MPI_TIMEOUT_SECONDS", "5") ]; Limit = TimeSpan.FromMinutes 3.0
        Check = fun code seconds r0 _ _ ->
            expect (failedJob code seconds 45.0 @ [ (has "raised DistributedException: Barrier did not complete within 5 s on rank 0 of 2" r0, "rank 0's named timeout") ]) }
      { Name = "the C# data-parallel example (examples/DataParallel.CSharp) on two ranks"
        Arguments = [ example ]; Environment = []; Limit = TimeSpan.FromMinutes 5.0
        Check = fun code _ r0 _ _ ->
            expect [ code = 0, $"exit code {code}"; has "2 rank(s)" r0 && has "data-parallel example ok" r0, "rank 0 should report two ranks and success" ] } ]

/// Runs every scenario; one outcome each (a single failed outcome when Open MPI is missing and cannot be installed).
let run (root: string) (configuration: string) (output: string) : Outcome list =
    match ensureOpenMpi () with
    | Some why -> [ { Name = "Open MPI"; Passed = false; Output = why } ]
    | None ->
    if Directory.Exists output then Directory.Delete(output, true)
    Directory.CreateDirectory output |> ignore
    scenarios root configuration (Path.Combine(output, "work"))
    |> List.mapi (fun i s ->
        let files = Path.Combine(output, $"scenario-{i}")
        let environment =
            [ "OMPI_ALLOW_RUN_AS_ROOT", "1"; "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"; "TERM", "dumb" ] @ s.Environment
        let exported = s.Environment |> List.collect (fun (name, _) -> [ "-x"; name ])
        let watch = Diagnostics.Stopwatch.StartNew()
        let code, all =
            Exec.run false s.Limit root environment mpirun
                ([ "-np"; "2"; "--oversubscribe"; "--bind-to"; "none"; "--output-filename"; files ] @ exported @ [ "dotnet" ] @ s.Arguments)
        let seconds = watch.Elapsed.TotalSeconds
        let rankOutput r =
            let file = Path.Combine(files, "1", $"rank.{r}", "stdout")
            if File.Exists file then File.ReadAllText file else ""
        let verdict = s.Check code seconds (rankOutput 0) (rankOutput 1) all
        let passed = verdict.IsNone
        printfn "mpirun -np 2: %s: %s (%.0f s)" s.Name (match verdict with None -> "passed" | Some why -> $"FAILED: {why}") seconds
        if not passed then printfn "%s\n--- rank 0:\n%s\n--- rank 1:\n%s" all (rankOutput 0) (rankOutput 1)
        { Name = s.Name; Passed = passed; Output = all })
