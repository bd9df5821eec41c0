/// What the ranks of a data-parallel training agree on at each iteration and epoch, so that they stay in step: whether
/// each had a batch, whether each failed (every rank then raises a named error instead of waiting), the mean loss, the
/// stop decision of rank 0's callback, the mean validation loss. With one process each is the identity.
module internal NeuralOde.Core.DistributedStep

open System
open NeuralOde

let private where (epoch: int) (iteration: int) = $"at epoch {epoch}, iteration {iteration}"

/// Returns Some (the mean of the ranks' losses) when every rank had a batch and none failed, None when no rank had
/// one (the epoch is over). A failure on any rank raises on every rank (World.Agree); ranks that disagree on
/// whether the epoch goes on raise DistributedException naming them.
let iteration (world: World) (epoch: int) (iteration: int) (hadBatch: bool) (failure: exn) (loss: float) : float option =
    let n = world.Size
    let status = Array.zeroCreate<float> (2 * n + 1)
    if hadBatch then status.[world.Rank] <- 1.0
    if not (isNull failure) then status.[n + world.Rank] <- 1.0
    elif hadBatch then status.[2 * n] <- loss
    world.AllReduceSum status
    if Array.exists (fun f -> f > 0.0) status.[n .. 2 * n - 1] then world.Agree(where epoch iteration, failure)
    let withBatch = [ for r in 0 .. n - 1 do if status.[r] > 0.0 then r ]
    if withBatch.IsEmpty then None
    elif withBatch.Length < n then
        let without = [ 0 .. n - 1 ] |> List.except withBatch
        let list (ranks: int list) = String.Join(", ", ranks)
        raise (DistributedException(
                 $"Ranks {list without} had no batch left {where epoch iteration} while ranks {list withBatch} had one: every rank must get the same number of batches in an epoch (shard each global batch with Distributed.shard)."))
    else Some(status.[2 * n] / float n)

/// Rank 0's stop decision, given to every rank.
let stop (world: World) (rootStops: bool) : bool =
    let flag = [| (if world.IsRoot && rootStops then 1.0 else 0.0) |]
    world.AllReduceSum flag
    flag.[0] > 0.0

/// The mean of the ranks' validation losses (None when no rank has a validation function).
let validation (world: World) (value: float option) : float option =
    let v = [| defaultArg value 0.0; (if value.IsSome then 1.0 else 0.0) |]
    world.AllReduceSum v
    if v.[1] > 0.0 then Some(v.[0] / v.[1]) else None

/// Raises on every rank unless all ranks resume from rank 0's position (each rank loads the checkpoint itself).
let resume (world: World) (epoch: int) (iteration: int) =
    let root = world.BroadcastBytes(BitConverter.GetBytes(int64 epoch * 1000000000L + int64 iteration), 0)
    let expected = BitConverter.ToInt64(root, 0)
    let failure =
        if expected <> int64 epoch * 1000000000L + int64 iteration then
            DistributedException($"Rank {world.Rank} resumes from epoch {epoch}, iteration {iteration}, but rank 0 from epoch {expected / 1000000000L}, iteration {expected % 1000000000L}: every rank must load the same checkpoint (a shared folder, or the same file copied to every machine).") :> exn
        else null
    world.Agree("when resuming", failure)
