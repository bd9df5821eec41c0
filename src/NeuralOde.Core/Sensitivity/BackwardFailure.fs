/// Carrying a failure out of the adjoint's backward pass. TorchSharp runs a custom autograd function's backward as a
/// callback from libtorch's native engine, where a .NET exception cannot pass: thrown there, it ends the process.
/// So the adjoint's backward catches what fails (a backward solve's OdeSolveException, an exception from the vector
/// field), records it here, and hands libtorch gradients of a shape it rejects. libtorch then stops the backward
/// pass with an error that reaches `loss.backward()` as an ExternalException ("... returned an invalid gradient
/// ..."); `Ode.backward` runs `loss.backward()` and raises the recorded exception instead.
module internal NeuralOde.Core.BackwardFailure

open TorchSharp

/// The failure recorded on this thread: libtorch runs a CPU backward pass on the thread that called backward(), so
/// concurrent passes on different threads keep theirs apart.
type private OnThisThread() =
    [<System.ThreadStatic; DefaultValue>]
    static val mutable private failure: exn
    static member Failure with get () = OnThisThread.failure and set (v: exn) = OnThisThread.failure <- v

// A GPU backward pass runs on libtorch's device threads: its failure is also kept here for whichever thread asks.
let private gate = obj ()
let mutable private onAnyThread: exn option = None

/// Records the exception a backward pass failed with.
let record (e: exn) =
    OnThisThread.Failure <- e
    lock gate (fun () -> onAnyThread <- Some e)

/// Forgets what was recorded (before a backward pass).
let clear () =
    OnThisThread.Failure <- null
    lock gate (fun () -> onAnyThread <- None)

/// The exception recorded on this thread, else (when `otherThreads`) the latest from any thread; and forgets it.
let take (otherThreads: bool) : exn option =
    let mine = OnThisThread.Failure
    OnThisThread.Failure <- null
    lock gate (fun () ->
        let found = if not (isNull mine) then Some mine elif otherThreads then onAnyThread else None
        if found.IsSome && (isNull mine || onAnyThread |> Option.exists (fun e -> obj.ReferenceEquals(e, mine))) then
            onAnyThread <- None
        found)

/// A gradient libtorch refuses for an input of `shape`: one dimension fewer (a shape the input's cannot be
/// reduced to). Null for a 0-dim input, which any gradient could be reduced to.
let rejectedGradient (shape: int64[]) (dtype: torch.ScalarType) (device: torch.Device) : torch.Tensor =
    if shape.Length = 0 then null
    else torch.zeros(shape[1..], dtype = dtype, device = device)
