/// A compiled field on host buffers over chunks of rows (Problem/FieldBackend.fs's ICompiledSystem and ITapedSystem):
/// each chunk of the batch's rows is evaluated on buffers of its own, chunks side by side (IntraOpThreads), and the
/// chunks' shares of the parameters' gradients are summed. The rows are independent in f and its products; only the
/// integrator's error norm couples them, and it sees the whole state. A backend supplies the rows (FieldBackends/Mlp).
module internal NeuralOde.Core.FieldBackends.ChunkedSystem

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.State.Buffers

type Tensor = torch.Tensor

/// A buffer owned as a disposable (kept with a chunk's other buffers).
type OwnedBuffer(dtype: torch.ScalarType, length: int) =
    let b = buffer dtype 1 length
    member _.Buffer = b
    interface IDisposable with
        member _.Dispose() = b.Tensor.Dispose()

/// One chunk of a system's rows, on buffers of its own.
type IRows =
    /// f at the chunk's rows of y into the same rows of dy, keeping the evaluation under `slot`.
    abstract Forward: slot: int * t: float * y: Buffer * dy: Buffer -> unit
    /// The adjoint system's derivative at the chunk's rows of [x; a] (into the same rows of dy's x and a parts), and
    /// −(the chunk's share of the parameters' gradients) into `gradients` from `offset`.
    abstract Adjoint: t: float * y: Buffer * dy: Buffer * gradients: Buffer * offset: int -> unit
    /// (∂f/∂y)ᵀ g at the slot's evaluation, for the chunk's rows of g into the same rows of gy (the parameters' share
    /// accumulated when `accumulate`).
    abstract Products: slot: int * t: float * g: Buffer * gy: Buffer * accumulate: bool -> unit
    /// Makes evaluation slots until there are `count` (a tape).
    abstract EnsureSlots: count: int -> unit
    abstract ClearGradients: unit -> unit
    /// The chunk's accumulated parameter gradients, new tensors in the system's parameter order.
    abstract ParameterGradients: unit -> Tensor[]
    /// A buffer of the parameters' entries for the chunk's share of their gradients.
    abstract Share: Buffer
    /// False once the chunk's buffers, given back, went to another solve.
    abstract Held: bool

/// The system over its chunks' rows (n state entries, the parameters' entries in order), on buffers rented for one
/// solve and given back by Dispose.
type RowChunkSystem(rows: IRows[], parameters: Tensor[], n: int, giveBack: unit -> unit) =
    let tracked = parameters |> Array.map (fun p -> p.requires_grad)
    let p = parameters |> Array.sumBy (fun p -> int (p.numel()))
    let shares = if rows.Length = 1 then [||] else rows |> Array.map (fun r -> r.Share)
    // Grad mode is per thread: a chunk's worker thread has it on, and the buffers' in-place updates are not to be recorded
    // (the calling thread solves under no_grad already).
    let inParallel (work: int -> unit) =
        if rows.Length = 1 then work 0
        else IntraOpThreads.inParallel rows.Length (fun c -> (use _ = torch.no_grad() in work c))
    let mutable disposed = false
    interface ITapedSystem with
        member _.Length = n
        member _.Parameters = parameters
        member _.ParameterLength = p
        member _.Evaluate(t, y, dy) = inParallel (fun c -> rows[c].Forward(0, t, y, dy))
        member _.EvaluateAdjoint(t, y, dy) =
            if rows.Length = 1 then rows[0].Adjoint(t, y, dy, dy, 2 * n)
            else
                inParallel (fun c -> rows[c].Adjoint(t, y, dy, shares[c], 0))
                copy shares[0] 0 dy (2 * n) p
                for c in 1 .. shares.Length - 1 do
                    match dy.Data, shares[c].Data with
                    | (:? (float32[]) as d), (:? (float32[]) as s) -> for i in 0 .. p - 1 do d[2 * n + i] <- d[2 * n + i] + s[i]
                    | d, s ->
                        let d, s = d :?> float[], s :?> float[]
                        for i in 0 .. p - 1 do d[2 * n + i] <- d[2 * n + i] + s[i]
        member _.EvaluateTaped(slot, t, y, dy) =
            for r in rows do r.EnsureSlots(slot + 1)
            inParallel (fun c -> rows[c].Forward(slot, t, y, dy))
        member _.ProductsAt(slot, t, g, gy) =
            let accumulate = Array.exists id tracked
            inParallel (fun c -> rows[c].Products(slot, t, g, gy, accumulate))
        member _.ClearGradients() = for r in rows do r.ClearGradients()
        member _.Valid = rows |> Array.forall (fun r -> r.Held)
        member _.ParameterGradients() =
            let all = rows |> Array.map (fun r -> r.ParameterGradients())
            for c in 1 .. all.Length - 1 do
                Array.iter2 (fun (total: Tensor) (part: Tensor) -> (Internal.TensorOps.addScaledInPlace total part 1.0 |> ignore; part.Dispose())) all[0] all[c]
            Array.map2 (fun (g: Tensor) tracked -> if tracked then g else (g.Dispose(); null)) all[0] tracked
    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                giveBack ()
