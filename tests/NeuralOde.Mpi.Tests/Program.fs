/// Scenarios run under `mpirun -np 2` by tests/Mpi/MpiRuns.fsx. Usage: NeuralOde.Mpi.Tests SCENARIO [FOLDER].
/// Each prints "rank R: <verdict>" lines; "passed" verdicts and the exit code are what the runner checks.
module NeuralOde.Mpi.Tests.Program

open System
open System.IO
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde
open NeuralOde.Core

let f64 = torch.float64
type Net = TorchSharp.Modules.Sequential

let say (world: World) (text: string) =
    printfn "rank %d: %s" world.Rank text
    Console.Out.Flush()

/// A small block (2 → 16 → 2, tanh) with a linear read-out; `seed` sets its initial parameters.
let model (seed: int) (sensitivity: Sensitivity) =
    torch.manual_seed (int64 seed) |> ignore
    let layer (name: string) (m: Module<torch.Tensor, torch.Tensor>) = name, m
    let field = Sequential(layer "l1" (Linear(2L, 16L, dtype = f64)), layer "act" (Tanh()), layer "l2" (Linear(16L, 2L, dtype = f64)))
    let block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, sensitivity, [| 0.0; 1.0 |])
    Sequential(layer "block" block, layer "readout" (Linear(2L, 2L, dtype = f64)))

/// Global batches of the moons (64 rows, 3 an epoch), the same on every rank.
let globalBatches () =
    use g = torch.Generator(7UL)
    let x, y = Datasets.Moons.sample 192 0.1 f64 g
    [ for b in 0 .. 2 -> x.narrow(0, int64 (64 * b), 64L), y.narrow(0, int64 (64 * b), 64L) ]

type Counter() =
    member val Count = 0 with get, set
    interface IProgress<TrainingProgress> with
        member c.Report _ = c.Count <- c.Count + 1

let train (world: World) (net: TorchSharp.Modules.Sequential) (epochs: int) (batches: int -> (torch.Tensor * torch.Tensor) list) (options: TrainerOptions) =
    use opt = torch.optim.Adam(net.parameters(), 0.02)
    let loss (x: torch.Tensor, y: torch.Tensor) = torch.nn.functional.cross_entropy(net.forward x, y)
    Trainer.fit net opt loss (fun e -> Seq.ofList (batches e)) { options with Epochs = epochs; World = Some world }

let parameters (net: Module) = net.parameters() |> Seq.map (fun p -> p.detach().clone()) |> Array.ofSeq

let maxDifference (a: torch.Tensor[]) (b: torch.Tensor[]) =
    Array.map2 (fun (x: torch.Tensor) (y: torch.Tensor) -> x.sub(y).abs().max().ToDouble()) a b |> Array.max

/// k ranks (different initial parameters, each its shard) train to the parameters one process gets on the whole
/// batches from rank 0's initial parameters; progress on rank 0 only; the checkpoint by rank 0 only.
let equality (world: World) (folder: string) =
    for name, sensitivity in [ "autograd", Sensitivity.Autograd; "adjoint", Sensitivity.adjoint; "interpolated adjoint", Sensitivity.interpolatedAdjoint ] do
        use net = model (11 + world.Rank) sensitivity
        let data = globalBatches ()
        let counter = Counter()
        let checkpoint = Path.Combine(folder, $"checkpoint-{name.Replace(' ', '-')}-rank{world.Rank}.bin")
        let result =
            train world net 2 (fun _ -> [ for x, y in data -> Distributed.shard world x, Distributed.shard world y ])
                { Trainer.defaults with Progress = Some(counter :> IProgress<_>); CheckpointPath = Some checkpoint }
        let trained = parameters net
        // Every rank ends with rank 0's parameters.
        let fromRoot = trained |> Array.map (fun p -> p.clone())
        for p in fromRoot do world.Broadcast(p, 0)
        let spread = maxDifference trained fromRoot
        if world.IsRoot then
            use alone = model 11 sensitivity
            use single = Distributed.local ()
            let reference = train single alone 2 (fun _ -> data) Trainer.defaults
            let difference = maxDifference trained (parameters alone)
            let lossDifference = abs (reference.Epochs.[1].Loss - result.Epochs.[1].Loss)
            let reportsOk = counter.Count = 2 * 3 + 2
            let ok = difference < 1e-10 && lossDifference < 1e-10 && reportsOk && File.Exists checkpoint && spread = 0.0
            say world (sprintf "equality %s: %s (parameters differ from one process's by %.2e, epoch loss by %.2e; %d reports; checkpoint written: %b; ranks' parameters differ by %g)"
                           name (if ok then "passed" else "FAILED") difference lossDifference counter.Count (File.Exists checkpoint) spread)
        else
            let ok = counter.Count = 0 && not (File.Exists checkpoint) && spread = 0.0
            say world (sprintf "equality %s: %s (%d reports, checkpoint written: %b, parameters differ from rank 0's by %g)"
                           name (if ok then "passed" else "FAILED") counter.Count (File.Exists checkpoint) spread)

/// Seven solves of dx/dt = −(i+1)x, x0 = ones(i+1), split over the ranks, gathered in order to rank 0.
let ensemble (world: World) =
    let results =
        Ensemble.map world 7 (fun i ->
            let x0 = torch.ones([| int64 (i + 1) |], dtype = f64)
            let rate = float (i + 1)
            let problem = OdeProblem.create (fun _ x -> x.mul(torch.tensor(-rate, dtype = f64))) x0 [| 0.0; 1.0 |]
            use solution = Ode.solve problem Solvers.dopri5 (StepControl.adaptive 1e-10 1e-12)
            solution.Final.clone())
    if world.IsRoot then
        let errors =
            results |> Array.mapi (fun i r ->
                if r.shape <> [| int64 (i + 1) |] then infinity
                else (r: torch.Tensor).sub(torch.full([| int64 (i + 1) |], Scalar.op_Implicit (exp (-(float (i + 1)))), dtype = f64)).abs().max().ToDouble())
        let ok = results.Length = 7 && Array.forall (fun e -> e < 1e-8) errors
        say world (sprintf "ensemble: %s (%d results in member order; largest error against exp(-(i+1)) %.1e)" (if ok then "passed" else "FAILED") results.Length (Array.max errors))
    else
        let start, count = Ensemble.range world 7
        say world (sprintf "ensemble: %s (ran members %d..%d, received %d results)" (if results.Length = 0 then "passed" else "FAILED") start (start + count - 1) results.Length)

/// The public collectives on awkward inputs: a transposed (non-contiguous) float64 tensor summed, a float32 mean, an
/// int64 broadcast from rank 1, a view into a larger tensor summed in place (its neighbours untouched).
let collectives (world: World) =
    let r = float world.Rank
    use a = torch.arange(6L, dtype = f64).reshape(2L, 3L).add(torch.tensor(r, dtype = f64)).t()
    world.AllReduceSum a
    let expectedA = torch.arange(6L, dtype = f64).reshape(2L, 3L).mul(torch.tensor(2.0, dtype = f64)).add(torch.tensor(1.0, dtype = f64)).t()
    use b = torch.full([| 4L |], Scalar.op_Implicit (float32 (world.Rank + 1)), dtype = torch.float32)
    world.AllReduceMean b
    use c = torch.tensor([| int64 (10 * world.Rank); 7L |], dtype = torch.int64)
    world.Broadcast(c, 1)
    use whole = torch.zeros([| 6L |], dtype = f64)
    use middle = whole.narrow(0L, 2L, 2L)
    middle.fill_(Scalar.op_Implicit 1.0) |> ignore
    world.AllReduceSum middle
    let ok =
        a.sub(expectedA).abs().max().ToDouble() = 0.0
        && (b.sub(torch.tensor(1.5f, dtype = torch.float32)).abs().max().ToSingle() = 0.0f)
        && c.data<int64>().ToArray() = [| 10L; 7L |]
        && (whole.data<float>().ToArray() = [| 0.0; 0.0; 2.0; 2.0; 0.0; 0.0 |])
    say world (sprintf "collectives: %s (a transposed sum, a float32 mean, an int64 broadcast from rank 1, a view summed in place)" (if ok then "passed" else "FAILED"))

/// Rank 1's loss throws at iteration 3: every rank raises a named error (rank 1 its own), none waits.
let rankFails (world: World) =
    use net = model 11 Sensitivity.adjoint
    let data = globalBatches ()
    let mutable calls = 0
    use opt = torch.optim.Adam(net.parameters(), 0.02)
    let loss (x: torch.Tensor, y: torch.Tensor) =
        calls <- calls + 1
        if world.Rank = 1 && calls = 3 then raise (InvalidOperationException("injected failure in rank 1's loss"))
        torch.nn.functional.cross_entropy(net.forward x, y)
    try
        Trainer.fit net opt loss (fun _ -> [ for x, y in data -> Distributed.shard world x, Distributed.shard world y ])
            { Trainer.defaults with Epochs = 2; World = Some world } |> ignore
        say world "rank fails: no exception"
    with e ->
        say world (sprintf "rank fails: raised %s: %s" (e.GetType().Name) e.Message)
        exit 3

/// Rank 1 gets one batch fewer: both ranks raise the named mismatch.
let batchesDiffer (world: World) =
    use net = model 11 Sensitivity.Autograd
    let data = globalBatches ()
    try
        train world net 1 (fun _ -> [ for x, y in (if world.Rank = 1 then List.take 2 data else data) -> Distributed.shard world x, Distributed.shard world y ])
            Trainer.defaults |> ignore
        say world "batches differ: no exception"
    with e ->
        say world (sprintf "batches differ: raised %s: %s" (e.GetType().Name) e.Message)
        exit 3

[<EntryPoint>]
let main argv =
    let scenario = if argv.Length > 0 then argv.[0] else "equality"
    let folder = if argv.Length > 1 then argv.[1] else Path.GetTempPath()
    Directory.CreateDirectory folder |> ignore
    use world = Distributed.initializeWith { Distributed.defaults () with RequireMpi = true; ThreadsPerRank = Some 1 }
    match scenario with
    | "equality" -> equality world folder
    | "ensemble" -> ensemble world
    | "collectives" -> collectives world
    | "rank-fails" -> rankFails world
    | "batches-differ" -> batchesDiffer world
    | "unhandled" ->
        // Rank 1 throws outside any collective while rank 0 waits in one: rank 1's unhandled exception aborts the job.
        if world.Rank = 1 then raise (InvalidOperationException("injected unhandled failure on rank 1"))
        world.Barrier()
        say world "unhandled: the barrier completed (it should not have)"
    | "crash" ->
        // Rank 1 dies at once (SIGKILL) while rank 0 waits in a collective: mpirun ends the job.
        if world.Rank = 1 then Diagnostics.Process.GetCurrentProcess().Kill()
        world.Barrier()
        say world "crash: the barrier completed (it should not have)"
    | "timeout" ->
        // Rank 1 is late beyond the timeout: rank 0's wait ends with a named error instead of hanging.
        if world.Rank = 1 then Threading.Thread.Sleep(TimeSpan.FromSeconds 60.0)
        try
            world.Barrier()
            say world "timeout: the barrier completed"
        with :? DistributedException as e ->
            say world (sprintf "timeout: raised DistributedException: %s" e.Message)
            exit 3
    | other ->
        say world (sprintf "unknown scenario '%s'" other)
        exit 2
    0
