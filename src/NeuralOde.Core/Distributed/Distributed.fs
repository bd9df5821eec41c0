/// Joining an MPI job, and the data-parallel operations on a model: parameters broadcast from rank 0, gradients
/// averaged over the ranks in buckets, batches split into each rank's shard.
namespace NeuralOde.Core

open System
open NeuralOde
open TorchSharp
open type TorchSharp.torch.nn

/// How a process joins its job.
type DistributedOptions =
    { /// The bound of every collective wait (default 600 s, or NEURALODE_MPI_TIMEOUT_SECONDS): past it the rank raises
      /// DistributedException, so a rank that died cannot leave the others waiting forever.
      Timeout: TimeSpan
      /// Raise when the process was not started by mpirun (default false: it runs as a world of one process).
      RequireMpi: bool
      /// TorchSharp threads of each rank (default: the cores divided by the ranks on this machine, at least 1, so
      /// the ranks of one machine do not oversubscribe its cores; a single-process world keeps its setting).
      ThreadsPerRank: int option }

/// Joining the job (initialize, local), this rank's shard of a batch, and the data-parallel operations on a model:
/// parameters broadcast from rank 0, gradients averaged over the ranks in buckets.
[<RequireQualifiedAccess>]
module Distributed =
    let private timeoutFromEnvironment () =
        match Environment.GetEnvironmentVariable "NEURALODE_MPI_TIMEOUT_SECONDS" with
        | null | "" -> TimeSpan.FromSeconds 600.0
        | text ->
            match Double.TryParse(text, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, s when s > 0.0 && not (Double.IsInfinity s) -> TimeSpan.FromSeconds s
            | _ -> raise (DistributedException($"NEURALODE_MPI_TIMEOUT_SECONDS must be a positive number of seconds; got '{text}'."))

    /// Default options: Timeout 600 s (or NEURALODE_MPI_TIMEOUT_SECONDS), no MPI required, threads per rank from the
    /// cores.
    let defaults () = { Timeout = timeoutFromEnvironment (); RequireMpi = false; ThreadsPerRank = None }

    /// True when a launcher (Open MPI's mpirun, a PMI or PMIx launcher such as srun) started this process.
    let launched () =
        [ "OMPI_COMM_WORLD_SIZE"; "PMIX_RANK"; "PMI_SIZE" ]
        |> List.exists (fun v -> not (String.IsNullOrEmpty(Environment.GetEnvironmentVariable v)))

    let private sync = obj ()
    let mutable private current : World = null

    /// A world of this process alone, without MPI: every collective is the identity (its Timeout, 600 s, bounds
    /// nothing: it never waits).
    let local () = new World(None, 0n, 0, 1, TimeSpan.FromSeconds 600.0)

    let private start (options: DistributedOptions) =
        let mpi = MpiLibrary.load ()
        let mutable initialized = 0
        MpiLibrary.check mpi 0 "MPI_Initialized" (mpi.Initialized.Invoke(&initialized))
        if initialized = 0 then
            let mutable provided = 0
            MpiLibrary.check mpi 0 "MPI_Init_thread" (mpi.InitThread.Invoke(0n, 0n, MpiLibrary.threadSerialized, &provided))
        MpiLibrary.check mpi 0 "MPI_Comm_set_errhandler" (mpi.CommSetErrhandler.Invoke(mpi.CommWorld, mpi.ErrorsReturn))
        let mutable rank = 0
        let mutable size = 0
        MpiLibrary.check mpi 0 "MPI_Comm_rank" (mpi.CommRank.Invoke(mpi.CommWorld, &rank))
        MpiLibrary.check mpi rank "MPI_Comm_size" (mpi.CommSize.Invoke(mpi.CommWorld, &size))
        let mutable control = 0n
        MpiLibrary.check mpi rank "MPI_Comm_dup" (mpi.CommDup.Invoke(mpi.CommWorld, &control))
        let onThisMachine =
            match Int32.TryParse(Environment.GetEnvironmentVariable "OMPI_COMM_WORLD_LOCAL_SIZE") with
            | true, n when n > 0 -> n
            | _ -> size
        let threads = options.ThreadsPerRank |> Option.defaultValue (max 1 (Environment.ProcessorCount / onThisMachine))
        torch.set_num_threads threads
        let world = new World(Some mpi, control, rank, size, options.Timeout)
        // An exception nobody catches ends this process: abort the job at once, naming it, rather than leave the
        // other ranks waiting for this one until their timeout.
        AppDomain.CurrentDomain.UnhandledException.Add(fun e ->
            let text = match e.ExceptionObject with :? exn as x -> $"unhandled {x.GetType().Name}: {x.Message}" | o -> $"unhandled {o}"
            if not world.IsDisposed then world.Abort(1, text))
        world

    /// Joins the job this process was started in (MPI_Init; MPI_COMM_WORLD), or — not started by mpirun — returns a
    /// world of one process (DistributedException instead with RequireMpi). One world per process: call it once and
    /// dispose the world at the end (MPI cannot start again after it is finalised). Open MPI missing or not Open MPI:
    /// DistributedException saying what to install.
    let initializeWith (options: DistributedOptions) : World =
        if options.Timeout <= TimeSpan.Zero then
            raise (ArgumentOutOfRangeException("timeout", options.Timeout, $"timeout must be positive; got {options.Timeout}."))
        options.ThreadsPerRank |> Option.iter (Internal.Guard.positiveCount "threadsPerRank")
        lock sync (fun () ->
            if not (isNull current) then
                raise (InvalidOperationException($"This process already joined its job (rank {current.Rank} of {current.Size}); use that world: MPI starts once per process."))
            if not (launched ()) then
                if options.RequireMpi then
                    raise (DistributedException(
                             "This process was not started by mpirun, and MPI was required. Run it as `mpirun -np 2 dotnet YourApp.dll` (one machine) or `mpirun -np 8 --hostfile hosts dotnet YourApp.dll` (several), with Open MPI installed (Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev)."))
                local ()
            else
                let world = start options
                current <- world
                world)

    /// initializeWith (defaults ()).
    let initialize () = initializeWith (defaults ())

    /// The rows [start, start + count) of a batch of `rows` that are `world`'s rank's shard: contiguous, in rank order,
    /// sizes differing by at most one.
    let shardRange (world: World) (rows: int64) =
        if isNull world then raise (ArgumentNullException("world"))
        if rows < int64 world.Size then
            raise (ArgumentException($"A batch of {rows} rows cannot be split over {world.Size} ranks: every rank needs at least one row.", "batch"))
        let start = rows * int64 world.Rank / int64 world.Size
        let stop = rows * int64 (world.Rank + 1) / int64 world.Size
        start, stop - start

    /// This rank's shard of `batch` (its rows along dimension 0, see shardRange): a view, no copy. With a global batch
    /// divisible by the number of ranks, the mean of the ranks' mean losses is the global batch's mean loss, so the
    /// averaged gradients equal one process's on the whole batch.
    let shard (world: World) (batch: torch.Tensor) =
        if isNull batch then raise (ArgumentNullException("batch"))
        if batch.dim() = 0L then raise (ArgumentException("A 0-dim tensor has no rows to shard.", "batch"))
        let start, count = shardRange world batch.shape.[0]
        batch.narrow(0, start, count)

    /// Default size of a gradient bucket: 25 MiB, as PyTorch's DistributedDataParallel.
    let defaultBucketBytes = 25L * 1024L * 1024L

    let private elementBytes (t: torch.Tensor) = int64 (t.element_size())

    /// Consecutive tensors of one dtype and device, at most `bucketBytes` together (a larger tensor alone).
    let internal buckets (bucketBytes: int64) (tensors: torch.Tensor[]) =
        let result = ResizeArray<torch.Tensor list>()
        let mutable current : torch.Tensor list = []
        let mutable bytes = 0L
        for t in tensors do
            let size = t.numel() * elementBytes t
            match current with
            | last :: _ when last.dtype = t.dtype && last.device_type = t.device_type && last.device_index = t.device_index && bytes + size <= bucketBytes ->
                current <- t :: current
                bytes <- bytes + size
            | [] ->
                current <- [ t ]
                bytes <- size
            | _ ->
                result.Add(List.rev current)
                current <- [ t ]
                bytes <- size
        if not current.IsEmpty then result.Add(List.rev current)
        result.ToArray()

    let private trained (model: Module) : torch.Tensor[] =
        model.parameters() |> Seq.filter (fun p -> p.requires_grad) |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq

    /// Averages the gradients of `model`'s trainable parameters over the ranks, in place: in buckets of at most
    /// `bucketBytes` (one MPI call per bucket, in reverse parameter order as DDP), each bucket's sum started as soon
    /// as it is packed so that packing the next overlaps it, then unpacked as each completes. A parameter without a
    /// gradient on this rank counts as zeros (and gets the average). Any sensitivity: it runs after the backward pass.
    let allReduceGradientsWith (bucketBytes: int64) (world: World) (model: Module) =
        if isNull world then raise (ArgumentNullException("world"))
        if isNull model then raise (ArgumentNullException("model"))
        if bucketBytes < 1L then raise (ArgumentOutOfRangeException("bucketBytes", bucketBytes, $"bucketBytes must be at least 1; got {bucketBytes}."))
        if world.Size > 1 then
            use _ = torch.no_grad()
            use scope = torch.NewDisposeScope()
            let parameters = trained model |> Array.rev
            let started =
                [| for bucket in buckets bucketBytes parameters ->
                     let flat =
                         torch.cat([| for p in bucket -> (if isNull p.grad then torch.zeros_like p else p.grad).reshape(-1L) |], 0L)
                             .``to``(torch.CPU).contiguous()
                     bucket, flat, world.StartAllReduceSum(flat, "AllReduceGradients") |]
            let scale = 1.0 / float world.Size
            for bucket, flat, pending in started do
                world.Wait pending
                flat.mul_(torch.tensor(scale, dtype = flat.dtype)) |> ignore
                let mutable offset = 0L
                for p in bucket do
                    let part = flat.narrow(0, offset, p.numel()).view_as(p).``to``(p.device)
                    if isNull p.grad then p.grad <- part.clone() else p.grad.copy_(part) |> ignore
                    offset <- offset + p.numel()

    /// allReduceGradientsWith defaultBucketBytes.
    let allReduceGradients (world: World) (model: Module) = allReduceGradientsWith defaultBucketBytes world model

    /// Gives every rank rank 0's parameters and buffers (in buckets), so that all ranks start from the same model.
    let broadcastParameters (world: World) (model: Module) =
        if isNull world then raise (ArgumentNullException("world"))
        if isNull model then raise (ArgumentNullException("model"))
        if world.Size > 1 then
            use _ = torch.no_grad()
            use scope = torch.NewDisposeScope()
            let tensors = Array.append (model.parameters() |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq) (model.buffers() |> Array.ofSeq)
            for bucket in buckets defaultBucketBytes tensors do
                let flat = torch.cat([| for t in bucket -> t.reshape(-1L) |], 0L).``to``(torch.CPU).contiguous()
                world.Broadcast(flat, 0)
                let mutable offset = 0L
                for t in bucket do
                    t.copy_(flat.narrow(0, offset, t.numel()).view_as(t)) |> ignore
                    offset <- offset + t.numel()
