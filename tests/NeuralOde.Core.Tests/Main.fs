module NeuralOde.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    TorchSharp.torch.set_num_threads 2
    // Names read like paths: Solvers/dopri5/convergence order is 5.
    Tests.runTestsInAssemblyWithCLIArgs [ CLIArguments.JoinWith "/" ] argv
