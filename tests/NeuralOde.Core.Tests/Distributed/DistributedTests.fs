/// The parts of scale-out that one process can check: the single-process world, sharding and ensemble ranges over k
/// ranks, gradient buckets, the tensors' wire format, loading failures. What needs several processes runs under
/// `mpirun -np 2` (tests/Mpi/MpiRuns.fsx, in the test command).
module NeuralOde.Tests.Distributed.DistributedTests

open System
open Expecto
open FsCheck
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises

let private f64 = torch.float64

/// Rank `rank` of a world of `size` without MPI: for the arithmetic of shards and ranges only (no collectives).
let private rankOf (rank: int) (size: int) = new World(None, 0n, rank, size, TimeSpan.FromSeconds 1.0)

let private withVariable (name: string) (value: string) (action: unit -> unit) =
    let before = Environment.GetEnvironmentVariable name
    Environment.SetEnvironmentVariable(name, value)
    try action () finally Environment.SetEnvironmentVariable(name, before)

[<Tests>]
let tests =
    testSequenced <| testList "Distributed" [
        test "a single-process world: rank 0 of 1, no MPI; its collectives leave tensors as they are; Agree re-raises a failure itself" {
            use world = Distributed.local ()
            Expect.equal (world.Rank, world.Size, world.IsRoot, world.UsesMpi) (0, 1, true, false) "rank 0 of 1, root, no MPI"
            use t = torch.tensor([| 1.0; -2.0; 3.5 |], dtype = f64)
            world.AllReduceSum t
            world.AllReduceMean t
            world.Broadcast(t, 0)
            world.Barrier()
            Expect.sequenceEqual (Tensors.toArray t) [ 1.0; -2.0; 3.5 ] "unchanged"
            world.Agree("at iteration 1", null)
            let failure = InvalidOperationException("mine")
            let raised = raises<InvalidOperationException> (fun () -> world.Agree("at iteration 1", failure))
            Expect.isTrue (obj.ReferenceEquals(raised, failure)) "the same exception"
            raises<ArgumentOutOfRangeException> (fun () -> world.Broadcast(t, 1)) |> ignore
        }
        test "the address handed to MPI is the tensor's first element, also for a view into a larger storage" {
            use t = torch.arange(10L, dtype = f64)
            use v = t.narrow(0L, 2L, 3L)
            Expect.isTrue (v.is_contiguous()) "a contiguous view with a storage offset"
            Expect.equal (World.Address v) (World.Address t + 16n) "two float64 elements further"
            let first = Runtime.InteropServices.Marshal.ReadInt64(World.Address v)
            Expect.equal (BitConverter.Int64BitsToDouble first) 2.0 "reads the view's first value"
        }
        testProperty "shards of k ranks cover the batch's rows in order, contiguous, sizes differing by at most one" <| fun (PositiveInt k0) (PositiveInt extra) ->
            let k = 1 + k0 % 64
            let rows = int64 (k + extra % 5000)
            let ranges = [ for r in 0 .. k - 1 -> Distributed.shardRange (rankOf r k) rows ]
            let starts = ranges |> List.map fst
            let counts = ranges |> List.map snd
            starts.Head = 0L
            && List.forall2 (fun (s, c) s' -> s + c = s') ranges.[.. k - 2] starts.Tail
            && List.sum counts = rows
            && List.max counts - List.min counts <= 1L
        test "shard gives this rank's rows as a view; fewer rows than ranks is refused naming the batch" {
            use batch = torch.arange(10L, dtype = f64).reshape(5L, 2L)
            use part = Distributed.shard (rankOf 1 2) batch
            Expect.sequenceEqual (Tensors.toArray part) [ 4.0; 5.0; 6.0; 7.0; 8.0; 9.0 ] "rows 2..4 (5 rows: 2 + 3)"
            let e = raises<ArgumentException> (fun () -> Distributed.shard (rankOf 0 8) batch |> ignore)
            Expect.equal e.ParamName "batch" "names the batch"
            Expect.stringContains e.Message "5 rows cannot be split over 8 ranks" "says why"
        }
        testProperty "ensemble ranges give every member to exactly one rank, in order" <| fun (PositiveInt k0) (NonNegativeInt members) ->
            let k = 1 + k0 % 32
            let owned = [ for r in 0 .. k - 1 do let s, c = Ensemble.range (rankOf r k) members in yield! [ s .. s + c - 1 ] ]
            owned = [ 0 .. members - 1 ]
        test "gradient buckets: consecutive tensors of one dtype up to the size, in order; a larger tensor alone" {
            let t (n: int64) (dtype: torch.ScalarType) = torch.zeros([| n |], dtype = dtype)
            let tensors = [| t 10L torch.float32; t 10L torch.float32; t 30L torch.float32; t 200L torch.float32; t 5L torch.float64; t 5L torch.float32 |]
            let buckets = Distributed.buckets 100L tensors |> Array.map (List.map (fun x -> x.numel(), x.dtype))
            Expect.equal buckets
                [| [ 10L, torch.float32; 10L, torch.float32 ]   // 80 bytes; the next 120 would pass 100
                   [ 30L, torch.float32 ]
                   [ 200L, torch.float32 ]                      // larger than a bucket: alone
                   [ 5L, torch.float64 ]                        // another dtype starts a bucket
                   [ 5L, torch.float32 ] |] "buckets"
            for x in tensors do x.Dispose()
        }
        test "the wire format gives back dtype, shape and values (float32, float64, int64, 0-dim, empty, non-contiguous)" {
            let cases : torch.Tensor list =
                [ torch.randn([| 3L; 4L |], dtype = torch.float32)
                  torch.randn([| 2L; 3L; 2L |], dtype = f64).transpose(0L, 2L)
                  torch.arange(7L, dtype = torch.int64)
                  torch.tensor(2.5, dtype = f64)
                  torch.zeros([| 0L; 3L |], dtype = torch.float32) ]
            use stream = new IO.MemoryStream()
            do
                use writer = new IO.BinaryWriter(stream, Text.Encoding.UTF8, true)
                for c in cases do TensorBytes.write writer c
            stream.Position <- 0L
            use reader = new IO.BinaryReader(stream)
            for c in cases do
                use back = TensorBytes.read reader
                Expect.equal back.dtype c.dtype "dtype"
                Expect.equal back.shape c.shape "shape"
                Expect.isTrue (back.eq(c).all().ToBoolean()) "values"
            Expect.equal stream.Position stream.Length "all read"
        }
        test "an ensemble on one process: results in member order, each a new tensor; a member's failure is named" {
            use world = Distributed.local ()
            let results = Ensemble.map world 5 (fun i -> torch.full([| int64 i + 1L |], Scalar.op_Implicit (float i), dtype = f64))
            Expect.equal results.Length 5 "five results"
            results |> Array.iteri (fun i r ->
                Expect.equal r.shape [| int64 i + 1L |] "shape"
                Expect.isTrue (Tensors.toArray r |> Array.forall ((=) (float i))) "values")
            let e = raises<DistributedException> (fun () ->
                Ensemble.map world 4 (fun i -> if i = 2 then failwith "bad member" else torch.zeros(1L)) |> ignore)
            Expect.stringContains e.Message "Ensemble member 2 failed on rank 0: Exception: bad member" "names the member"
            Expect.isNotNull e.InnerException "the error inside"
        }
        test "not started by mpirun: initialize gives a one-process world, or DistributedException naming mpirun when MPI is required" {
            Expect.isFalse (Distributed.launched ()) "the test process is not under mpirun"
            let e = raises<DistributedException> (fun () -> Distributed.initializeWith { Distributed.defaults () with RequireMpi = true } |> ignore)
            Expect.stringContains e.Message "not started by mpirun" "says why"
            Expect.stringContains e.Message "mpirun -np 2 dotnet" "says how"
            use world = Distributed.initialize ()
            Expect.equal (world.Size, world.UsesMpi) (1, false) "one process"
        }
        test "a missing or foreign MPI library is a named error, not a crash; a malformed timeout is named" {
            withVariable "NEURALODE_MPI_LIBRARY" "/nonexistent/libmpi.so.40" (fun () ->
                let e = raises<DistributedException> (fun () -> MpiLibrary.load () |> ignore)
                Expect.stringContains e.Message "'/nonexistent/libmpi.so.40' could not be loaded" "names the path"
                Expect.stringContains e.Message "apt-get install openmpi-bin" "says what to install")
            withVariable "NEURALODE_MPI_LIBRARY" "libz.so.1" (fun () ->
                let e = raises<DistributedException> (fun () -> MpiLibrary.load () |> ignore)
                Expect.stringContains e.Message "it is not Open MPI" "a library without Open MPI's symbols")
            withVariable "NEURALODE_MPI_TIMEOUT_SECONDS" "soon" (fun () ->
                let e = raises<DistributedException> (fun () -> Distributed.defaults () |> ignore)
                Expect.stringContains e.Message "got 'soon'" "names the value")
        }
        test "the trainer with a one-process world trains exactly as without one" {
            let train (world: World option) =
                torch.manual_seed 3L |> ignore
                let field = Sequential(Linear(2L, 8L, dtype = f64), Tanh(), Linear(8L, 2L, dtype = f64))
                use block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 4, Sensitivity.adjoint, [| 0.0; 1.0 |])
                use opt = torch.optim.Adam(block.parameters(), 0.02)
                use g = torch.Generator(4UL)
                let data = [ for _ in 1 .. 3 -> torch.randn([| 8L; 2L |], dtype = f64, generator = g) ]
                let loss (x: torch.Tensor) = block.forward(x).sub(x.mul(torch.tensor(2.0, dtype = f64))).square().mean()
                Trainer.fit block opt loss (fun _ -> data) { Trainer.defaults with Epochs = 2; World = world } |> ignore
                block.parameters() |> Seq.map (fun p -> Tensors.toArray p) |> Array.concat
            use world = Distributed.local ()
            Expect.sequenceEqual (train (Some world)) (train None) "the same parameters"
        }
    ]
