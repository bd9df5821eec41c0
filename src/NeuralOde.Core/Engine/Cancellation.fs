/// Cancelling long solves: a token set here reaches every solve started inside `within` on this logical thread —
/// each step of a forward solve and of an adjoint's backward solves checks it — so a training loop, a test or a UI can
/// stop a solve that would run for minutes. A cancelled solve raises OperationCanceledException with the time.
module NeuralOde.Core.Cancellation

open System
open System.Threading

let private current = AsyncLocal<CancellationToken>()

/// Runs `action` with `token` reaching every solve inside it; the previous token is restored afterwards.
let within (token: CancellationToken) (action: unit -> 'a) : 'a =
    let previous = current.Value
    current.Value <- token
    try action ()
    finally current.Value <- previous

/// Raises OperationCanceledException, naming the time, when the token in force was cancelled.
let check (t: float) =
    let token = current.Value
    if token.IsCancellationRequested then
        raise (OperationCanceledException($"The solve was cancelled at t = {t}.", token))
