/// Data-parallel scaling (run under mpirun, one process per rank, by `build.fsx bench distributed`; never by the tests
/// except in quick mode): W1's model (MLP 2→64→64→2, tanh, RK4 × 20, autograd, linear readout, Adam 1e-3, float32)
/// trained by the Trainer with a World at a global batch of 4096 annuli points, each rank on its shard, one thread per
/// rank. Rank 0 prints one line: the median iteration (the trainer's own per-iteration wall time), the collectives of
/// one iteration timed alone (the gradients' bucketed allreduce and the trainer's two small agreements, after a
/// barrier, repeated), and the gradient bytes.
module NeuralOde.Benchmarks.Scaling

open System
open System.Diagnostics
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets

let private median (xs: float seq) =
    let a = Array.sort (Array.ofSeq xs)
    if a.Length = 0 then nan elif a.Length % 2 = 1 then a.[a.Length / 2] else 0.5 * (a.[a.Length / 2 - 1] + a.[a.Length / 2])

/// Trains `iterations` (after `warmup`) and returns the line rank 0 prints (other ranks: "").
let run (globalBatch: int) (iterations: int) (warmup: int) (threadsPerRank: int) =
    use world = Distributed.initializeWith { Distributed.defaults () with ThreadsPerRank = Some threadsPerRank }
    torch.manual_seed 11L |> ignore
    let block = new NeuralOdeModel(Workloads.mlp 64, Solvers.rk4, StepControl.steps 20, Sensitivity.Autograd, [| 0.0; 1.0 |])
    let model = Sequential(block :> Module<torch.Tensor, torch.Tensor>, Linear(2L, 2L))
    use optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    // A pool of global batches drawn once, the same on every rank (drawing is not what is measured).
    use generator = new torch.Generator(5UL)
    let pool = [| for _ in 1 .. 8 -> Annuli.sample globalBatch 0.1 torch.float32 generator |]
    let shards = pool |> Array.map (fun (x, y) -> Distributed.shard world x, Distributed.shard world y)
    let durations = ResizeArray<float>()
    let progress =
        { new IProgress<TrainingProgress> with
            member _.Report p = if not p.EndOfEpoch && p.Iteration > warmup then durations.Add p.Duration.TotalMilliseconds }
    let loss (x: torch.Tensor, y: torch.Tensor) = functional.cross_entropy(model.forward x, y)
    Trainer.fit model optimizer loss (fun _ -> Seq.init (warmup + iterations) (fun i -> shards.[i % shards.Length]))
        { Trainer.defaults with Progress = Some progress; World = Some world } |> ignore
    // The collectives of one iteration alone: the gradients' allreduce (the gradients are there from the last
    // iteration) and the trainer's two agreements (2k + 1 numbers, then 1).
    let gradientBytes = model.parameters() |> Seq.sumBy (fun p -> p.numel() * int64 (p.element_size()))
    let collective () =
        Distributed.allReduceGradients world model
        world.AllReduceSum(Array.zeroCreate<float> (2 * world.Size + 1))
        world.AllReduceSum(Array.zeroCreate<float> 1)
    for _ in 1 .. 20 do collective ()
    let alone = ResizeArray<float>()
    for _ in 1 .. 200 do
        world.Barrier()
        let watch = Stopwatch.StartNew()
        collective ()
        alone.Add watch.Elapsed.TotalMilliseconds
    let iteration = median durations
    let collectives = median alone
    if world.IsRoot then
        sprintf "distributed ranks=%d global_batch=%d iterations=%d iteration_ms=%.3f collectives_ms=%.4f gradient_bytes=%d threads_per_rank=%d library=%s"
            world.Size globalBatch iterations iteration collectives gradientBytes (torch.get_num_threads ()) (world.LibraryVersion.Split(',').[0])
    else ""
