/// Parallel regions whose workers run libtorch single-threaded: a compiled backend splits a batch's rows into chunks,
/// one thread each (and the discrete adjoint solves each chunk on its own thread), and each chunk's libtorch ops (its matrix products) must not start OpenMP teams of their own (a
/// team's threads spin after each region and slowed every later libtorch op: W1's floor took 200 ms instead of 40).
/// libtorch keeps its thread count as one number for the process (at::set_num_threads), so a worker that sets it to one
/// changes it for everyone: the count the outermost of any concurrent regions began with is put back when the last one
/// ends. That is the only state here, and it exists because libtorch's setting is global; how many threads a solve
/// uses is the solve's own setting (Ode.SolveOptions.Threads).
module internal NeuralOde.Core.IntraOpThreads

open System
open TorchSharp

let private gate = obj ()
let mutable private regions = 0
let mutable private saved = 0

let private enter () =
    lock gate (fun () ->
        if regions = 0 then saved <- torch.get_num_threads ()
        regions <- regions + 1
        saved)

let private leave () =
    lock gate (fun () ->
        regions <- regions - 1
        if regions = 0 then torch.set_num_threads saved)

/// Runs `work c` for c in 0 .. count − 1, side by side (one thread each, libtorch single-threaded in each) when
/// count > 1. A failure of several chunks raises the one at the earliest time (OdeSolveExceptions first).
let inParallel (count: int) (work: int -> unit) =
    if count <= 1 then work 0
    else
        let restore = enter ()
        try
            try
                Threading.Tasks.Parallel.For(0, count, fun c ->
                    torch.set_num_threads 1
                    try work c finally torch.set_num_threads restore) |> ignore
            with :? AggregateException as e ->
                let inner = e.Flatten().InnerExceptions |> Seq.toArray
                let solveFailures = inner |> Array.choose (function :? NeuralOde.Core.OdeSolveException as f -> Some f | _ -> None)
                let chosen = if solveFailures.Length > 0 then (solveFailures |> Array.minBy (fun f -> f.Time)) :> exn else inner[0]
                Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(chosen).Throw()
        finally leave ()
