/// NativeBackend.ensureLoaded in this test program: after TorchSharp has loaded (the runner initialises it first) and,
/// in a child process, before it. The paths that make a fixed private copy (a package's unedited shim) are run by
/// the consumer tests (tests/Consumers: an F# app built without the build-time fix, and an F# script).
module NeuralOde.Tests.Native.NativeBackendTests

open System
open System.IO
open Expecto
open TorchSharp
open NeuralOde.Core.Native
open NeuralOde.Tests.Support

/// Distinct paths of loaded files named `file` (from /proc/self/maps).
let mappedCopies (file: string) =
    File.ReadLines "/proc/self/maps"
    |> Seq.choose (fun line -> match line.IndexOf '/' with -1 -> None | at -> Some(line.Substring at))
    |> Seq.filter (fun path -> Path.GetFileName path = file)
    |> Seq.distinct
    |> List.ofSeq

/// Child scenario: the backend is loaded by ensureLoaded before any TorchSharp call, then TorchSharp uses it.
let loadBeforeTorchSharp () =
    let status = NativeBackend.ensureLoaded ()
    printfn "status: %A" status
    let expected = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so")
    let fixNeeded = GlibcxxFix.libstdcxxHasRequiredVersion None = Some false
    match status with
    | NativeBackend.NotNeeded when not fixNeeded ->
        // A libstdc++ with GLIBCXX_3.4.32: nothing to do, TorchSharp loads its backend itself.
        use x = torch.ones(2L)
        if NativeBackend.ensureLoaded () <> status then printfn "a second call differed"; Child.CheckFailed else Child.Passed
    | NativeBackend.Loaded shim when shim = expected ->
        use x = torch.tensor([| 3.0 |], dtype = torch.float64, requires_grad = true)
        use y = x.square()
        y.backward()
        let copies = mappedCopies "libLibTorchSharp.so"
        if x.grad.ToDouble() <> 6.0 then printfn "wrong gradient %g" (x.grad.ToDouble()); Child.CheckFailed
        elif copies <> [ expected ] then printfn "shims mapped: %A" copies; Child.CheckFailed
        elif NativeBackend.ensureLoaded () <> status then printfn "a second call differed"; Child.CheckFailed
        else Child.Passed
    | other ->
        printfn "expected Loaded %s (the build output's shim, fixed at build time) or NotNeeded, got %A" expected other
        Child.CheckFailed

[<Tests>]
let tests =
    testList "Native/NativeBackend" [
        test "after TorchSharp has loaded, ensureLoaded does nothing and says where the shim is" {
            use _ = torch.zeros(1L)
            match NativeBackend.ensureLoaded () with
            | NativeBackend.AlreadyLoaded shim ->
                Expect.equal (Path.GetFileName shim) "libLibTorchSharp.so" "the shim"
                Expect.equal (mappedCopies "libLibTorchSharp.so") [ shim ] "one shim in the process"
            | other -> failtestf "expected AlreadyLoaded, got %A" other
        }
        test "called before TorchSharp, it loads the build output's backend once and TorchSharp uses it" {
            let outcome = Child.run "native-load-before-torchsharp" (TimeSpan.FromMinutes 2.0)
            Expect.equal outcome.ExitCode Child.Passed $"child output:\n{outcome.Output}"
        }
    ]
