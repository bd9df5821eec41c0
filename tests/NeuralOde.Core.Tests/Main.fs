module NeuralOde.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--child"; "native-load-before-torchsharp" |] ->
        // Before anything touches TorchSharp (set_num_threads below would load it).
        NeuralOde.Tests.Native.NativeBackendTests.loadBeforeTorchSharp ()
    | [| "--child"; "onednn-keep" |] -> NeuralOde.Tests.Native.OneDnnCheckTests.keepScenario ()
    | [| "--child"; "onednn-off" |] -> NeuralOde.Tests.Native.OneDnnCheckTests.offScenario ()
    | _ ->
    // Two threads (CI's cores) unless NEURALODE_TEST_THREADS says otherwise: the test command reruns the tests that
    // train on one thread and with oneDNN limited to AVX2.
    let threads = match System.Environment.GetEnvironmentVariable "NEURALODE_TEST_THREADS" with null | "" -> 2 | v -> int v
    TorchSharp.torch.set_num_threads threads
    match argv with
    | [| "--child"; scenario |] ->
        // A scenario in a process of its own (Support/Child): its exit code is the verdict.
        match Map.tryFind scenario NeuralOde.Tests.Reliability.ChildScenarios.all with
        | Some run -> run ()
        | None ->
            eprintfn "unknown child scenario '%s'" scenario
            2
    | _ ->
        // Names read like paths: Solvers/dopri5/convergence order is 5.
        Tests.runTestsInAssemblyWithCLIArgs [ CLIArguments.JoinWith "/" ] argv
