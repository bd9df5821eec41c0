/// The MPI C API, bound at run time over Open MPI's libmpi.so.40 (Debian's openmpi-bin / libopenmpi-dev).
///
/// Why our own binding: MPI.NET 1.4.0, the .NET binding on NuGet, is built for Microsoft MPI — it loads msmpi.dll and
/// passes MS-MPI's integer handles; pointed at Open MPI it segfaults in MPI_Init (tried, see docs/distributed.md).
/// Open MPI's handles are addresses of exported objects (MPI_COMM_WORLD is &ompi_mpi_comm_world), read here with
/// NativeLibrary.GetExport. The library is loaded only when a program runs under mpirun, by path (NEURALODE_MPI_LIBRARY
/// or libmpi.so.40), so the package works without MPI installed. Only the calls the collectives need are bound, all
/// nonblocking (the waits poll them with a deadline: a rank that died cannot leave the others waiting forever).
module internal NeuralOde.Core.MpiLibrary

open System
open NeuralOde
open System.Runtime.InteropServices
open System.Text


[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal IntOut = delegate of int byref -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal InitThread = delegate of nativeint * nativeint * int * int byref -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal NoArguments = delegate of unit -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal CommIntOut = delegate of nativeint * int byref -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal CommHandle = delegate of nativeint * nativeint -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal CommDup = delegate of nativeint * nativeint byref -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal CommInt = delegate of nativeint * int -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal ErrorString = delegate of int * byte[] * int byref -> int
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal LibraryVersion = delegate of byte[] * int byref -> int
/// MPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, &request)
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal Iallreduce = delegate of nativeint * nativeint * int * nativeint * nativeint * nativeint * nativeint byref -> int
/// MPI_Ibcast(buffer, count, datatype, root, comm, &request)
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal Ibcast = delegate of nativeint * int * nativeint * int * nativeint * nativeint byref -> int
/// MPI_Ibarrier(comm, &request)
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal Ibarrier = delegate of nativeint * nativeint byref -> int
/// MPI_Igather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, root, comm, &request)
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal Igather = delegate of nativeint * int * nativeint * nativeint * int * nativeint * int * nativeint * nativeint byref -> int
/// MPI_Igatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, root, comm, &request)
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal Igatherv = delegate of nativeint * int * nativeint * nativeint * nativeint * nativeint * nativeint * int * nativeint * nativeint byref -> int
/// MPI_Test(&request, &flag, status)
[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type internal Test = delegate of nativeint byref * int byref * nativeint -> int

/// The bound functions and the handles of the objects they take.
type internal Mpi =
    { Path: string
      Initialized: IntOut
      Finalized: IntOut
      InitThread: InitThread
      Finalize: NoArguments
      CommRank: CommIntOut
      CommSize: CommIntOut
      CommSetErrhandler: CommHandle
      CommDup: CommDup
      Abort: CommInt
      ErrorString: ErrorString
      GetLibraryVersion: LibraryVersion
      Iallreduce: Iallreduce
      Ibcast: Ibcast
      Ibarrier: Ibarrier
      Igather: Igather
      Igatherv: Igatherv
      Test: Test
      CommWorld: nativeint
      Float: nativeint
      Double: nativeint
      Int: nativeint
      LongLong: nativeint
      Byte: nativeint
      Sum: nativeint
      ErrorsReturn: nativeint }

/// Open MPI's MPI_IN_PLACE: ((void *) 1).
let inPlace = 1n
/// MPI_THREAD_SERIALIZED: any thread may call MPI, one at a time (the world's lock sees to that).
let threadSerialized = 2

let private installHint =
    "Install Open MPI (Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev), or set NEURALODE_MPI_LIBRARY to the path of Open MPI's libmpi.so"

let private bind<'d when 'd :> Delegate> (export: string -> nativeint) (name: string) : 'd =
    Marshal.GetDelegateForFunctionPointer<'d>(export name)

/// Loads Open MPI from NEURALODE_MPI_LIBRARY or libmpi.so.40; raises DistributedException saying what is missing.
let load () : Mpi =
    let requested = Environment.GetEnvironmentVariable "NEURALODE_MPI_LIBRARY"
    let path = if String.IsNullOrWhiteSpace requested then "libmpi.so.40" else requested
    let handle =
        match NativeLibrary.TryLoad path with
        | true, h -> h
        | _ ->
            raise (DistributedException(
                     $"Open MPI's library '{path}' could not be loaded, so this process cannot join an MPI job. {installHint}."))
    let export (name: string) =
        match NativeLibrary.TryGetExport(handle, name) with
        | true, p -> p
        | _ ->
            raise (DistributedException(
                     $"'{path}' has no symbol {name}: it is not Open MPI (MPICH and Microsoft MPI pass other handles, which NeuralOde does not bind). {installHint}."))
    { Path = path
      Initialized = bind export "MPI_Initialized"
      Finalized = bind export "MPI_Finalized"
      InitThread = bind export "MPI_Init_thread"
      Finalize = bind export "MPI_Finalize"
      CommRank = bind export "MPI_Comm_rank"
      CommSize = bind export "MPI_Comm_size"
      CommSetErrhandler = bind export "MPI_Comm_set_errhandler"
      CommDup = bind export "MPI_Comm_dup"
      Abort = bind export "MPI_Abort"
      ErrorString = bind export "MPI_Error_string"
      GetLibraryVersion = bind export "MPI_Get_library_version"
      Iallreduce = bind export "MPI_Iallreduce"
      Ibcast = bind export "MPI_Ibcast"
      Ibarrier = bind export "MPI_Ibarrier"
      Igather = bind export "MPI_Igather"
      Igatherv = bind export "MPI_Igatherv"
      Test = bind export "MPI_Test"
      CommWorld = export "ompi_mpi_comm_world"
      Float = export "ompi_mpi_float"
      Double = export "ompi_mpi_double"
      Int = export "ompi_mpi_int"
      LongLong = export "ompi_mpi_long_long_int"
      Byte = export "ompi_mpi_byte"
      Sum = export "ompi_mpi_op_sum"
      ErrorsReturn = export "ompi_mpi_errors_return" }

/// MPI's text for an error code.
let errorText (mpi: Mpi) (code: int) =
    let buffer = Array.zeroCreate<byte> 512
    let mutable length = 0
    if mpi.ErrorString.Invoke(code, buffer, &length) = 0 && length > 0 then Encoding.ASCII.GetString(buffer, 0, length)
    else $"MPI error {code}"

/// The library's version line (e.g. "Open MPI v4.1.4, ...").
let version (mpi: Mpi) =
    let buffer = Array.zeroCreate<byte> 8192
    let mutable length = 0
    if mpi.GetLibraryVersion.Invoke(buffer, &length) = 0 then Encoding.ASCII.GetString(buffer, 0, length).Split('\n').[0].Trim(char 0, ' ')
    else "unknown"

/// Raises DistributedException naming `what` and the rank unless `code` is MPI_SUCCESS (0).
let check (mpi: Mpi) (rank: int) (what: string) (code: int) =
    if code <> 0 then raise (DistributedException($"{what} failed on rank {rank}: {errorText mpi code} (MPI error {code})."))
