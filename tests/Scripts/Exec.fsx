// Running a program from the build scripts (tests/Consumers, tests/Readme, the side-by-side benchmark): stdout and
// stderr together, optionally echoed, and killed after a time limit so that a hung restore or program fails instead
// of hanging the test command.
module Exec

open System
open System.Diagnostics
open System.Text

/// Runs `program args` in `workDir` with extra environment variables; returns (exit code, output). With `echo`, each
/// line is also printed, indented. Past `limit` the process tree is killed and the exit code is 124.
let run (echo: bool) (limit: TimeSpan) (workDir: string) (environment: (string * string) list) (program: string) (args: string list) =
    let psi = ProcessStartInfo(program, args, WorkingDirectory = workDir, UseShellExecute = false,
                               RedirectStandardOutput = true, RedirectStandardError = true)
    psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] <- "1"
    psi.Environment["DOTNET_NOLOGO"] <- "1"
    for name, value in environment do psi.Environment[name] <- value
    use p = new Process(StartInfo = psi)
    let output = StringBuilder()
    let add (line: string) =
        if not (isNull line) then
            lock output (fun () ->
                output.AppendLine line |> ignore
                if echo then printfn "    %s" line)
    p.OutputDataReceived.Add(fun e -> add e.Data)
    p.ErrorDataReceived.Add(fun e -> add e.Data)
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    if not (p.WaitForExit limit) then
        (try p.Kill(true) with _ -> ())
        p.WaitForExit()
        124, lock output (fun () -> output.ToString()) + $"\n(killed after {limit.TotalMinutes:F0} minutes)"
    else
        p.WaitForExit()
        p.ExitCode, lock output (fun () -> output.ToString())
