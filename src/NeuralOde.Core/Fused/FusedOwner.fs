/// Which thread a model's fused kernels serve. A model's fused workspaces, the wrappers its pool hands to libtorch and
/// the thread settings of its split solves belong to one solve at a time: the first thread that solves by them owns
/// them for the model's life, and solves from any other thread take the generic solver (same results, same
/// statistics), which is safe to run beside them. (One block from two threads, fused, ended the process with SIGSEGV.)
namespace NeuralOde.Core.Fused

open System.Threading

type internal FusedOwner() =
    let mutable owner = 0
    /// True when the calling thread owns (or now takes) the fused kernels.
    member _.IsCallerOwner =
        let me = System.Environment.CurrentManagedThreadId
        Interlocked.CompareExchange(&owner, me, 0) |> ignore
        Volatile.Read(&owner) = me
