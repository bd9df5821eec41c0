/// Runs a scenario of this test program in a child process, so that an input that aborts the process (a libtorch
/// error TorchSharp does not catch ends it with SIGABRT) or hangs fails the test instead of killing the runner.
module NeuralOde.Tests.Support.Child

open System
open System.Diagnostics

/// The outcome of a child run.
type Outcome =
    { ExitCode: int
      TimedOut: bool
      Output: string }

/// Runs `dotnet <this test program> --child <scenario>` with extra environment variables and a time limit; stdout and
/// stderr together.
let runWith (scenario: string) (environment: (string * string) list) (timeout: TimeSpan) : Outcome =
    let program = Reflection.Assembly.GetEntryAssembly().Location
    let psi = ProcessStartInfo("dotnet", [ program; "--child"; scenario ], RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for name, value in environment do psi.Environment[name] <- value
    use p = Process.Start psi
    let output = Text.StringBuilder()
    p.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lock output (fun () -> output.AppendLine e.Data |> ignore))
    p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock output (fun () -> output.AppendLine e.Data |> ignore))
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    let finished = p.WaitForExit(int timeout.TotalMilliseconds)
    if not finished then
        try p.Kill(true) with _ -> ()
        p.WaitForExit()
    else p.WaitForExit()
    { ExitCode = (if finished then p.ExitCode else -1); TimedOut = not finished; Output = lock output (fun () -> output.ToString()) }

/// Runs `dotnet <this test program> --child <scenario>` with a time limit; stdout and stderr together.
let run (scenario: string) (timeout: TimeSpan) : Outcome = runWith scenario [] timeout

/// The exit code of a scenario that ended as it should.
let [<Literal>] Passed = 0
/// The exit code of a scenario whose check failed (the output says how).
let [<Literal>] CheckFailed = 3

/// Starts `dotnet <this test program> --child <scenario>` with extra environment variables, output discarded; the
/// caller waits for or kills it.
let start (scenario: string) (environment: (string * string) list) : Process =
    let program = Reflection.Assembly.GetEntryAssembly().Location
    let psi = ProcessStartInfo("dotnet", [ program; "--child"; scenario ], RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for name, value in environment do psi.Environment[name] <- value
    let p = Process.Start psi
    p.OutputDataReceived.Add ignore
    p.ErrorDataReceived.Add ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p
