/// Buffers kept between solves (a compiled backend's workspaces), by layout: at most `capacity`, the oldest disposed.
/// Thread-safe: a rented item belongs to one solve until it is returned.
namespace NeuralOde.Core.FieldBackends

open System
open System.Collections.Generic
open TorchSharp

type internal KeyedPool<'T when 'T :> IDisposable>(capacity: int, rented: 'T -> unit) =
    let free = List<string * 'T>()
    let gate = obj ()
    /// An item of the layout `key`, kept or made by `make` (without grad mode), and `rented` told.
    member _.Rent(key: string, make: unit -> 'T) =
        let found =
            lock gate (fun () ->
                match Seq.tryFindIndex (fun (k, _) -> k = key) free with
                | Some i ->
                    let _, w = free[i]
                    free.RemoveAt i
                    Some w
                | None -> None)
        let w = match found with Some w -> w | None -> (use _ = torch.no_grad() in make ())
        rented w
        w
    /// Gives an item back (the oldest is disposed when more than `capacity` are kept).
    member _.Return(key: string, w: 'T) =
        let dropped =
            lock gate (fun () ->
                free.Add((key, w))
                if free.Count > capacity then
                    let _, old = free[0]
                    free.RemoveAt 0
                    Some old
                else None)
        dropped |> Option.iter (fun w -> w.Dispose())
