/// Ensembles and sweeps across ranks (SciML's EnsembleProblem idea): many independent solves or trainings, split
/// over the ranks in contiguous blocks, their results gathered to rank 0 in order.
[<RequireQualifiedAccess>]
module NeuralOde.Core.Ensemble

open System
open NeuralOde
open System.IO
open TorchSharp

/// The members [start, start + count) of `members` that `world`'s rank runs: contiguous blocks in rank order, sizes
/// differing by at most one (a rank may have none when there are fewer members than ranks).
let range (world: World) (members: int) =
    if isNull world then raise (ArgumentNullException("world"))
    if members < 0 then raise (ArgumentOutOfRangeException("count", members, $"count must be at least 0; got {members}."))
    let start = int (int64 members * int64 world.Rank / int64 world.Size)
    let stop = int (int64 members * int64 (world.Rank + 1) / int64 world.Size)
    start, stop - start

/// Runs `run i` for i = 0 … count − 1, each on one rank (see range), every member in a dispose scope of its own, and
/// gathers the results to rank 0: there an array of `count` tensors in member order (new CPU tensors, detached,
/// owned by the caller); on every other rank an empty array. Any member's exception fails the ensemble on every
/// rank: the rank it happened on raises DistributedException naming the member with the error inside, the others
/// raise DistributedException naming that rank and member.
let map (world: World) (count: int) (run: int -> torch.Tensor) : torch.Tensor[] =
    if isNull (box run) then raise (ArgumentNullException("run"))
    let start, mine = range world count
    use buffer = new MemoryStream()
    let failure =
        try
            use writer = new BinaryWriter(buffer, Text.Encoding.UTF8, true)
            for i in start .. start + mine - 1 do
                use _ = torch.NewDisposeScope()
                let result =
                    try run i
                    with e -> raise (DistributedException($"Ensemble member {i} failed on rank {world.Rank}: {e.GetType().Name}: {e.Message}", e))
                if isNull result then raise (DistributedException($"Ensemble member {i} returned null on rank {world.Rank}; return a tensor."))
                TensorBytes.write writer result
            null
        with e -> e
    world.Agree("in an ensemble", failure)
    let gathered = world.GatherBytes(buffer.ToArray())
    if world.IsRoot then
        [| for bytes in gathered do
             use reader = new BinaryReader(new MemoryStream(bytes: byte[]))
             while reader.BaseStream.Position < reader.BaseStream.Length do
                 yield TensorBytes.read reader |]
    else [||]
