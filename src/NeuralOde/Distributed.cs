using System;
using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// Scale-out on MPI (Open MPI, started by <c>mpirun</c>): one process per rank, on one machine or many. Join the job
/// with <see cref="Initialize"/>, then train data-parallel (<see cref="Trainer{TBatch}.Fit"/> with <c>world:</c>, each
/// rank on its <see cref="DistributedWorld.Shard"/> of every batch) or split independent solves and trainings over the
/// ranks (<see cref="Ensemble.Map"/>). A program not started by <c>mpirun</c> gets a world of one process, so the same
/// program runs unchanged without MPI.
/// </summary>
public static class Distributed
{
    /// <summary>Joins the job this process was started in (MPI_Init; MPI_COMM_WORLD), or — not started by
    /// <c>mpirun</c> — returns a world of one process. Call it once per process and dispose the world at the end.</summary>
    /// <param name="timeout">The bound of every collective wait (default 600 s, or the environment variable
    /// <c>NEURALODE_MPI_TIMEOUT_SECONDS</c>): past it the rank raises <see cref="DistributedException"/>, so a rank
    /// that died cannot leave the others waiting forever.</param>
    /// <param name="requireMpi">Throw <see cref="DistributedException"/> when the process was not started by
    /// <c>mpirun</c>, instead of running as one process.</param>
    /// <param name="threadsPerRank">TorchSharp threads of each rank (default: the machine's cores divided by the ranks
    /// on it, at least 1).</param>
    /// <exception cref="DistributedException">Open MPI cannot be loaded (the message says what to install), MPI
    /// failed to start, or MPI was required and the process was not started by <c>mpirun</c>.</exception>
    /// <exception cref="InvalidOperationException">The process already joined its job.</exception>
    public static DistributedWorld Initialize(TimeSpan? timeout = null, bool requireMpi = false, int? threadsPerRank = null)
    {
        var defaults = Core.Distributed.defaults();
        var options = new Core.DistributedOptions(
            timeout ?? defaults.Timeout, requireMpi,
            threadsPerRank is int t ? FSharpOption<int>.Some(t) : FSharpOption<int>.None);
        return new DistributedWorld(Core.Distributed.initializeWith(options));
    }

    /// <summary>A world of this process alone, without MPI (every collective is the identity): for tests, and for
    /// code that takes a world but runs on one machine.</summary>
    public static DistributedWorld Local() => new(Core.Distributed.local());

    /// <summary>True when a launcher (Open MPI's <c>mpirun</c>, a PMI or PMIx launcher such as <c>srun</c>) started
    /// this process.</summary>
    public static bool Launched => Core.Distributed.launched();
}

/// <summary>
/// The processes of one job and the collective operations between them. Every wait is bounded by
/// <see cref="Timeout"/>. Dispose it at the end of the program: it waits for every rank to arrive, then finalises MPI
/// (or aborts the job when a collective failed). An exception that no rank code catches aborts the whole job at once,
/// naming the rank.
/// </summary>
public sealed class DistributedWorld : IDisposable
{
    internal Core.World Core { get; }

    internal DistributedWorld(Core.World world) => Core = world;

    /// <summary>This process's rank, from 0.</summary>
    public int Rank => Core.Rank;

    /// <summary>The number of processes.</summary>
    public int Size => Core.Size;

    /// <summary>True on rank 0: the rank that reports progress, writes checkpoints and receives gathered results.</summary>
    public bool IsRoot => Core.IsRoot;

    /// <summary>True when this world runs on MPI (started by <c>mpirun</c>).</summary>
    public bool UsesMpi => Core.UsesMpi;

    /// <summary>The bound of every collective wait.</summary>
    public TimeSpan Timeout => Core.Timeout;

    /// <summary>The MPI library's version line ("none" for a single-process world).</summary>
    public string LibraryVersion => Core.LibraryVersion;

    /// <summary>This rank's shard of <paramref name="batch"/>: its contiguous rows along dimension 0, in rank order,
    /// sizes differing by at most one (a view, no copy). With a global batch divisible by <see cref="Size"/>, the
    /// averaged gradients of the ranks' mean losses equal one process's on the whole batch.</summary>
    /// <param name="batch">A global batch, the same on every rank.</param>
    /// <exception cref="ArgumentException">The batch has fewer rows than there are ranks.</exception>
    public torch.Tensor Shard(torch.Tensor batch) => NeuralOde.Core.Distributed.shard(Core, batch);

    /// <summary>The first row and the number of rows of this rank's shard of a batch of <paramref name="rows"/>.</summary>
    /// <param name="rows">The global batch's rows (at least <see cref="Size"/>).</param>
    public (long Start, long Count) ShardRange(long rows)
    {
        var range = NeuralOde.Core.Distributed.shardRange(Core, rows);
        return (range.Item1, range.Item2);
    }

    /// <summary>Averages the gradients of <paramref name="model"/>'s trainable parameters over the ranks, in place,
    /// after the backward pass (any sensitivity): in buckets of at most <paramref name="bucketBytes"/>, one MPI call
    /// per bucket, each started as soon as it is packed so that packing the next overlaps it. Call it between
    /// <c>Ode.Backward(loss)</c> and <c>optimizer.step()</c> in a hand-written loop; the trainer calls it itself.</summary>
    /// <param name="model">The model whose gradients to average.</param>
    /// <param name="bucketBytes">The most bytes in one bucket (default 25 MiB, as PyTorch's DDP).</param>
    public void AllReduceGradients(Module model, long bucketBytes = 25L * 1024 * 1024) =>
        NeuralOde.Core.Distributed.allReduceGradientsWith(bucketBytes, Core, model);

    /// <summary>Gives every rank rank 0's parameters and buffers of <paramref name="model"/> (the trainer does it at
    /// the start of <see cref="Trainer{TBatch}.Fit"/>).</summary>
    /// <param name="model">The model, built the same way on every rank.</param>
    public void BroadcastParameters(Module model) => NeuralOde.Core.Distributed.broadcastParameters(Core, model);

    /// <summary>Sums <paramref name="tensor"/> over the ranks, in place (float32, float64, int32, int64, uint8).</summary>
    /// <param name="tensor">The tensor, the same shape on every rank.</param>
    public void AllReduceSum(torch.Tensor tensor) => Core.AllReduceSum(tensor);

    /// <summary>Averages <paramref name="tensor"/> over the ranks, in place.</summary>
    /// <param name="tensor">The tensor, the same shape on every rank.</param>
    public void AllReduceMean(torch.Tensor tensor) => Core.AllReduceMean(tensor);

    /// <summary>Gives every rank rank <paramref name="root"/>'s values of <paramref name="tensor"/>, in place.</summary>
    /// <param name="tensor">The tensor, the same shape on every rank.</param>
    /// <param name="root">The rank whose values are sent.</param>
    public void Broadcast(torch.Tensor tensor, int root = 0) => Core.Broadcast(tensor, root);

    /// <summary>Waits until every rank has called it.</summary>
    public void Barrier() => Core.Barrier();

    /// <summary>Ends the whole job at once from this rank: <paramref name="message"/> is written to standard error,
    /// naming this rank, then every process is stopped and <c>mpirun</c> exits with <paramref name="code"/>.</summary>
    /// <param name="code">The job's exit code.</param>
    /// <param name="message">Why.</param>
    public void Abort(int code, string message) => Core.Abort(code, message);

    /// <summary>Waits (up to <see cref="Timeout"/>) for every rank to arrive, then finalises MPI; aborts the job
    /// instead when a collective failed or the others do not arrive.</summary>
    public void Dispose() => Core.Dispose();
}

/// <summary>
/// Ensembles and sweeps across ranks (SciML's <c>EnsembleProblem</c> idea): many independent solves or trainings,
/// split over the ranks in contiguous blocks, their results gathered to rank 0 in order.
/// </summary>
public static class Ensemble
{
    /// <summary>Runs <c>run(i)</c> for i = 0 … <paramref name="count"/> − 1, each on one rank, every member in a
    /// dispose scope of its own, and gathers the results to rank 0.</summary>
    /// <param name="world">The job's world.</param>
    /// <param name="count">The number of members.</param>
    /// <param name="run">One member: a solve, a training of a sweep; its result as a tensor (e.g. a final state, or
    /// metrics as a 1-D tensor).</param>
    /// <returns>On rank 0, the <paramref name="count"/> results in member order (new CPU tensors the caller owns); on
    /// every other rank an empty array.</returns>
    /// <exception cref="DistributedException">A member failed, on this rank (the member named, its error inside) or
    /// on another (the rank and member named).</exception>
    public static torch.Tensor[] Map(DistributedWorld world, int count, Func<int, torch.Tensor> run)
    {
        ArgumentNullException.ThrowIfNull(world);
        ArgumentNullException.ThrowIfNull(run);
        return NeuralOde.Core.Ensemble.map(world.Core, count, FuncConvert.FromFunc(run));
    }

    /// <summary>The first member and the number of members that <paramref name="world"/>'s rank runs.</summary>
    /// <param name="world">The job's world.</param>
    /// <param name="count">The number of members.</param>
    public static (int Start, int Count) Range(DistributedWorld world, int count)
    {
        ArgumentNullException.ThrowIfNull(world);
        var range = NeuralOde.Core.Ensemble.range(world.Core, count);
        return (range.Item1, range.Item2);
    }
}
