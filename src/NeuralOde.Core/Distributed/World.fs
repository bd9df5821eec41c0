namespace NeuralOde.Core

open System
open NeuralOde
open System.Diagnostics
open System.Runtime.CompilerServices
open System.Runtime.ExceptionServices
open System.Runtime.InteropServices
open System.Text
open System.Threading
open Microsoft.FSharp.NativeInterop
open TorchSharp

#nowarn "9"

/// A nonblocking collective in flight: `World.Wait` completes it.
type internal PendingCollective =
    { Request: nativeint[]
      What: string
      Pins: GCHandle list }

/// The processes of one job (MPI_COMM_WORLD under mpirun; one process otherwise) and the collective operations
/// between them: sums, broadcasts, barriers, gathers, and the agreement on failures that lets every rank raise a
/// named error instead of waiting for a rank that failed. Every wait is bounded by `Timeout`: past it the rank raises
/// DistributedException and, when disposed or on an unhandled exception, aborts the job (MPI_Abort), so no rank
/// hangs forever. Calls are serialised (one at a time, any thread). Dispose at the end of the program: it waits (up
/// to Timeout) for every rank to arrive, then finalises MPI.
[<Sealed; AllowNullLiteral>]
type World internal (mpi: MpiLibrary.Mpi option, control: nativeint, rank: int, size: int, timeout: TimeSpan) =
    let gate = obj ()
    let mutable broken : string option = None
    let mutable disposed = false

    let comm () = match mpi with Some m -> m | None -> invalidOp "A single-process world has no MPI library."

    let dtypeOf (m: MpiLibrary.Mpi) (t: torch.ScalarType) =
        match t with
        | torch.ScalarType.Float32 -> m.Float
        | torch.ScalarType.Float64 -> m.Double
        | torch.ScalarType.Int32 -> m.Int
        | torch.ScalarType.Int64 -> m.LongLong
        | torch.ScalarType.Byte -> m.Byte
        | other ->
            raise (NotSupportedException($"Collectives take float32, float64, int32, int64 or uint8 tensors; got {other}. Convert with .to_type first."))

    let ensureUsable (what: string) =
        if disposed then raise (ObjectDisposedException("World", $"{what}: the world was disposed (MPI finalised)."))
        match broken with
        | Some why -> raise (DistributedException($"{what} on rank {rank}: an earlier collective failed ({why}); the job cannot go on. Let the exception end the program, or dispose the world to abort every rank."))
        | None -> ()

    /// The address of a CPU tensor's first element (TorchSharp's byte span over its storage).
    static member internal Address(t: torch.Tensor) : nativeint =
        let span = t.bytes
        NativePtr.toNativeInt (NativePtr.ofVoidPtr<byte> (Unsafe.AsPointer<byte>(&MemoryMarshal.GetReference span)))

    /// This process's rank, from 0.
    member _.Rank = rank
    /// The number of processes.
    member _.Size = size
    /// True on rank 0, the rank that reports, writes checkpoints and receives gathered results.
    member _.IsRoot = (rank = 0)
    /// True when the world runs on MPI (started by mpirun), false for a single process without MPI.
    member _.UsesMpi = mpi.IsSome
    /// The bound of every collective wait.
    member _.Timeout = timeout
    /// The MPI library's version line ("none" for a single-process world).
    member _.LibraryVersion = match mpi with Some m -> MpiLibrary.version m | None -> "none"

    /// Starts a nonblocking collective; `start` receives the request cell.
    member internal _.Start(what: string, pins: GCHandle list, start: nativeint[] -> int) : PendingCollective =
        lock gate (fun () ->
            ensureUsable what
            let m = comm ()
            let request = [| 0n |]
            let code = start request
            if code <> 0 then
                for p in pins do p.Free()
                broken <- Some $"{what}: {MpiLibrary.errorText m code}"
                MpiLibrary.check m rank what code
            { Request = request; What = what; Pins = pins })

    /// Waits for a started collective, polling it until it completes or Timeout passes (DistributedException).
    member internal _.Wait(pending: PendingCollective) =
        let m = comm ()
        let watch = Stopwatch.StartNew()
        let mutable flag = 0
        let mutable polls = 0
        try
            while flag = 0 do
                let code = lock gate (fun () -> m.Test.Invoke(&pending.Request.[0], &flag, 0n))
                if code <> 0 then
                    broken <- Some $"{pending.What}: {MpiLibrary.errorText m code}"
                    MpiLibrary.check m rank pending.What code
                if flag = 0 then
                    if watch.Elapsed > timeout then
                        let why = $"{pending.What} did not complete within {timeout.TotalSeconds:F0} s on rank {rank} of {size}"
                        broken <- Some why
                        raise (DistributedException(
                                 $"{why}: another rank failed, stopped, or is this much slower. The job cannot go on; this rank aborts it when the exception ends the program or the world is disposed (raise the timeout with DistributedOptions.Timeout or NEURALODE_MPI_TIMEOUT_SECONDS when ranks legitimately wait longer)."))
                    polls <- polls + 1
                    if polls > 2000 then Thread.Yield() |> ignore
        finally
            if flag <> 0 then for p in pending.Pins do p.Free()

    member private w.Run(what, pins, start) = w.Wait(w.Start(what, pins, start))

    /// Starts summing a contiguous CPU tensor over every rank, in place (nonblocking; `Wait` completes it).
    member internal w.StartAllReduceSum(t: torch.Tensor, what: string) : PendingCollective =
        let m = comm ()
        if t.numel() > int64 Int32.MaxValue then raise (ArgumentException($"{what}: {t.numel()} elements is more than one MPI call takes (2^31 − 1).", "tensor"))
        let address = World.Address t
        w.Start(what, [], fun request -> m.Iallreduce.Invoke(MpiLibrary.inPlace, address, int (t.numel()), dtypeOf m t.dtype, m.Sum, m.CommWorld, &request.[0]))

    /// Applies `operation` to a contiguous CPU copy of `t` (or to `t` itself when it is one), in chunks MPI can
    /// take, then copies the result back.
    member private _.Staged(t: torch.Tensor, name: string, operation: torch.Tensor -> unit) =
        if isNull t then raise (ArgumentNullException(name))
        use _ = torch.no_grad()
        let direct = t.device_type = DeviceType.CPU && t.is_contiguous()
        let host = if direct then t else t.detach().cpu().contiguous()
        try
            let flat = host.view(-1L)
            let chunk = 1L <<< 30
            let mutable offset = 0L
            while offset < flat.numel() do
                let length = min chunk (flat.numel() - offset)
                use part = flat.narrow(0, offset, length)
                operation part
                offset <- offset + length
            if not direct then t.copy_(host) |> ignore
        finally
            if not direct then host.Dispose()

    /// Sums `tensor` over every rank, in place (float32, float64, int32, int64, uint8; any device and layout: a
    /// non-contiguous or GPU tensor goes through a contiguous CPU copy).
    member w.AllReduceSum(tensor: torch.Tensor) =
        if size > 1 then w.Staged(tensor, "tensor", fun part -> w.Wait(w.StartAllReduceSum(part, "AllReduceSum")))
        elif isNull tensor then raise (ArgumentNullException("tensor"))

    /// Averages `tensor` over every rank, in place.
    member w.AllReduceMean(tensor: torch.Tensor) =
        w.AllReduceSum tensor
        if size > 1 then
            use _ = torch.no_grad()
            tensor.div_(torch.tensor(float size, dtype = tensor.dtype, device = tensor.device)) |> ignore

    /// Sums an array of numbers over every rank, in place.
    member w.AllReduceSum(values: float[]) =
        if isNull values then raise (ArgumentNullException("values"))
        if size > 1 && values.Length > 0 then
            let m = comm ()
            let pin = GCHandle.Alloc(values, GCHandleType.Pinned)
            w.Run("AllReduceSum", [ pin ], fun request ->
                m.Iallreduce.Invoke(MpiLibrary.inPlace, pin.AddrOfPinnedObject(), values.Length, m.Double, m.Sum, m.CommWorld, &request.[0]))

    /// Gives every rank rank `root`'s values of `tensor`, in place.
    member w.Broadcast(tensor: torch.Tensor, root: int) =
        if root < 0 || root >= size then raise (ArgumentOutOfRangeException("root", root, $"root must be a rank between 0 and {size - 1}; got {root}."))
        if size > 1 then
            let m = comm ()
            w.Staged(tensor, "tensor", fun part ->
                let address = World.Address part
                w.Run("Broadcast", [], fun request ->
                    m.Ibcast.Invoke(address, int (part.numel()), dtypeOf m part.dtype, root, m.CommWorld, &request.[0])))
        elif isNull tensor then raise (ArgumentNullException("tensor"))

    /// Gives every rank rank `root`'s bytes (the other ranks' arguments are ignored).
    member internal w.BroadcastBytes(bytes: byte[], root: int) : byte[] =
        if size = 1 then bytes
        else
            let m = comm ()
            let length = [| (if rank = root then int64 bytes.Length else 0L) |]
            let lengthPin = GCHandle.Alloc(length, GCHandleType.Pinned)
            w.Run("Broadcast", [ lengthPin ], fun request -> m.Ibcast.Invoke(lengthPin.AddrOfPinnedObject(), 1, m.LongLong, root, m.CommWorld, &request.[0]))
            let buffer = if rank = root then bytes else Array.zeroCreate<byte> (int length.[0])
            if buffer.Length > 0 then
                let pin = GCHandle.Alloc(buffer, GCHandleType.Pinned)
                w.Run("Broadcast", [ pin ], fun request -> m.Ibcast.Invoke(pin.AddrOfPinnedObject(), buffer.Length, m.Byte, root, m.CommWorld, &request.[0]))
            buffer

    /// Waits until every rank has called it.
    member w.Barrier() =
        if size > 1 then
            let m = comm ()
            w.Run("Barrier", [], fun request -> m.Ibarrier.Invoke(m.CommWorld, &request.[0]))

    /// The barrier of Dispose, on a communicator of its own (a duplicate of the world's): it can never be matched
    /// with a collective that a failed rank left the others waiting in.
    member private w.FinishingBarrier() =
        let m = comm ()
        w.Run("The finishing barrier (Dispose)", [], fun request -> m.Ibarrier.Invoke(control, &request.[0]))

    /// Gathers every rank's bytes to rank 0, in rank order (the other ranks get an empty array).
    member internal w.GatherBytes(bytes: byte[]) : byte[][] =
        if size = 1 then [| bytes |]
        else
            let m = comm ()
            let lengths = Array.zeroCreate<int64> size
            let mine = [| int64 bytes.Length |]
            let minePin = GCHandle.Alloc(mine, GCHandleType.Pinned)
            let lengthsPin = GCHandle.Alloc(lengths, GCHandleType.Pinned)
            w.Run("Gather", [ minePin; lengthsPin ], fun request ->
                m.Igather.Invoke(minePin.AddrOfPinnedObject(), 1, m.LongLong, lengthsPin.AddrOfPinnedObject(), 1, m.LongLong, 0, m.CommWorld, &request.[0]))
            let total = Array.sum lengths
            if rank = 0 && total > int64 Int32.MaxValue then
                raise (DistributedException($"Gather: the ranks' results come to {total} bytes, more than one MPI gather takes (2 GiB); gather fewer or smaller results at a time."))
            let counts = lengths |> Array.map int
            let displacements = Array.scan (+) 0 counts |> Array.take size
            let received = Array.zeroCreate<byte> (if rank = 0 then int total else 0)
            let pins = [ GCHandle.Alloc(bytes, GCHandleType.Pinned); GCHandle.Alloc(received, GCHandleType.Pinned)
                         GCHandle.Alloc(counts, GCHandleType.Pinned); GCHandle.Alloc(displacements, GCHandleType.Pinned) ]
            let address (i: int) = pins.[i].AddrOfPinnedObject()
            w.Run("Gather", pins, fun request ->
                m.Igatherv.Invoke(address 0, bytes.Length, m.Byte, address 1, address 2, address 3, m.Byte, 0, m.CommWorld, &request.[0]))
            if rank = 0 then Array.init size (fun r -> Array.sub received displacements.[r] counts.[r]) else [||]

    /// Every rank calls it with its own failure (null: none) of the step named by `what` ("at epoch 2, iteration 7");
    /// when no rank failed it returns. Otherwise the ranks that failed re-raise their own exception, and every other
    /// rank raises DistributedException naming the first failed rank, what it was doing and its error.
    member w.Agree(what: string, failure: exn) =
        if size = 1 then
            if not (isNull failure) then ExceptionDispatchInfo.Capture(failure).Throw()
        else
            let flags = Array.zeroCreate<float> size
            if not (isNull failure) then flags.[rank] <- 1.0
            w.AllReduceSum flags
            let failed = [ for r in 0 .. size - 1 do if flags.[r] > 0.0 then r ]
            match failed with
            | [] -> ()
            | first :: _ ->
                let text =
                    let mine = if rank = first then Encoding.UTF8.GetBytes($"{failure.GetType().Name}: {failure.Message}") else [||]
                    Encoding.UTF8.GetString(w.BroadcastBytes(mine, first))
                if not (isNull failure) then ExceptionDispatchInfo.Capture(failure).Throw()
                let ranks = String.Join(", ", failed)
                let others = if failed.Length > 1 then $" (ranks {ranks} failed)" else ""
                raise (DistributedException($"Rank {first} of {size} failed {what}{others}: {text}"))

    /// Ends the whole job at once from this rank (MPI_Abort): every process is stopped, mpirun exits with `code`.
    /// `message` is written to standard error first, naming this rank. A single-process world exits the process.
    member _.Abort(code: int, message: string) =
        eprintfn "NeuralOde.Distributed: rank %d of %d aborts the job: %s" rank size message
        Console.Error.Flush()
        match mpi with
        | Some m -> m.Abort.Invoke(m.CommWorld, code) |> ignore
        | None -> ()
        Environment.Exit code

    /// True once Dispose ran.
    member _.IsDisposed = disposed

    /// True after a collective failed or timed out: the job cannot go on.
    member _.IsBroken = broken.IsSome

    /// Waits (up to Timeout) for every rank to arrive, then finalises MPI; aborts the job instead when a collective
    /// failed, or when the others do not arrive in time (a rank that caught an error and ended while the others wait
    /// in a collective for it).
    member w.Dispose() =
        if not disposed then
            match mpi with
            | None -> disposed <- true
            | Some m ->
                match broken with
                | Some why -> w.Abort(3, why)
                | None ->
                    try w.FinishingBarrier()
                    with e -> w.Abort(3, $"while finishing: {e.Message}")
                    disposed <- true
                    m.Finalize.Invoke() |> ignore

    interface IDisposable with
        member w.Dispose() = w.Dispose()
