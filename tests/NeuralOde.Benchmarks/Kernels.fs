/// W1's kernels one by one: every matrix product and element-wise op of one RK4 stage (the MLP 2→64→64→2 with tanh,
/// forward and backward, batch 1024), each timed alone with hot inputs, at the benchmark's thread count and at one
/// thread. Their sum × 80 stages is what the iteration would cost if every kernel ran as fast as it does alone; the
/// floor (Floor.fs) runs the same kernels in the iteration's order, where activations come from memory rather than
/// cache and allocations are fresh. This says where the floor's time goes and which kernels the second thread helps.
module NeuralOde.Benchmarks.Kernels

open System.Diagnostics
open TorchSharp
open NeuralOde.Benchmarks.Report

type Tensor = torch.Tensor

/// Median microseconds of one call, over 7 timed batches of `calls` calls after a warm-up.
let private microseconds (calls: int) (action: unit -> unit) =
    for _ in 1 .. 50 do action ()
    let batches =
        Array.init 7 (fun _ ->
            let clock = Stopwatch.StartNew()
            for _ in 1 .. calls do action ()
            clock.Elapsed.TotalMilliseconds * 1000.0 / float calls)
    (Measure.summarize batches).Median

/// One kernel: its name, how many times one RK4 stage runs it, and one call that disposes what it makes.
type private Kernel = { Name: string; PerStage: int; Call: unit -> unit }

let private kernels () =
    let generator = new torch.Generator(7UL)
    let randn (shape: int64[]) = torch.randn(shape, generator = generator)
    let x, h, g, g2 = randn [| 1024L; 2L |], (randn [| 1024L; 64L |]).tanh(), randn [| 1024L; 64L |], randn [| 1024L; 2L |]
    let w1, w2, w3 = randn [| 64L; 2L |], randn [| 64L; 64L |], randn [| 2L; 64L |]
    // Transposed views made once (a view per call would be a tensor left to the finaliser in the timed loop).
    let w1t, w2t, w3t, gt, g2t = w1.t(), w2.t(), w3.t(), g.t(), g2.t()
    let b64, b2 = randn [| 64L |], randn [| 2L |]
    let minusOne, half = Scalar.op_Implicit -1.0, Scalar.op_Implicit 0.5
    let run (f: unit -> Tensor) = fun () -> (f ()).Dispose()
    let product (a: Tensor) (b: Tensor) = run (fun () -> a.mm(b))
    [ { Name = "forward: addmm 1024×2 · 2×64 + bias (layer 1)"; PerStage = 1; Call = run (fun () -> torch.addmm(b64, x, w1t, 1.0f, 1.0f)) }
      { Name = "forward: addmm 1024×64 · 64×64 + bias (layer 2)"; PerStage = 1; Call = run (fun () -> torch.addmm(b64, h, w2t, 1.0f, 1.0f)) }
      { Name = "forward: addmm 1024×64 · 64×2 + bias (layer 3)"; PerStage = 1; Call = run (fun () -> torch.addmm(b2, h, w3t, 1.0f, 1.0f)) }
      { Name = "forward: tanh 1024×64"; PerStage = 2; Call = run (fun () -> h.tanh()) }
      { Name = "backward: gᵀ·h 2×1024 · 1024×64 (layer 3 weight)"; PerStage = 1; Call = product g2t h }
      { Name = "backward: gᵀ·h 64×1024 · 1024×64 (layer 2 weight)"; PerStage = 1; Call = product gt h }
      { Name = "backward: gᵀ·x 64×1024 · 1024×2 (layer 1 weight)"; PerStage = 1; Call = product gt x }
      { Name = "backward: g·W 1024×2 · 2×64 (layer 3 input)"; PerStage = 1; Call = product g2 w3 }
      { Name = "backward: g·W 1024×64 · 64×64 (layer 2 input)"; PerStage = 1; Call = product g w2 }
      { Name = "backward: g·W 1024×64 · 64×2 (layer 1 input)"; PerStage = 1; Call = product g w1 }
      { Name = "backward: bias sum over the batch 1024×64"; PerStage = 2; Call = run (fun () -> g.sum(0L)) }
      { Name = "backward: tanh′ as the floor does it (mul, addcmul)"; PerStage = 2; Call = run (fun () -> (use gh = g.mul(h) in torch.addcmul(g, gh, h, minusOne))) }
      { Name = "RK4: stage input z + a·k (1024×2)"; PerStage = 1; Call = run (fun () -> x.add(g2, half)) } ]

/// The table: each kernel at the benchmark's thread count and at one thread, and the per-iteration sums.
let table () =
    // Every tensor made here (the kernels' inputs, the W1 variants) is freed when the table is done.
    use _ = torch.NewDisposeScope()
    let threads = torch.get_num_threads ()
    let list = kernels ()
    let timeAll n =
        torch.set_num_threads n
        list |> List.map (fun k -> microseconds 200 k.Call)
    let many, one = timeAll threads, timeAll 1
    torch.set_num_threads threads
    let stages = 80.0
    let perIteration (times: float list) = List.fold2 (fun acc k t -> acc + float k.PerStage * t) 0.0 list times * stages / 1000.0
    [ for k, a, b in List.zip3 list many one do
        value "W1 kernels" k.Name a "µs" $"{b:F1} µs at 1 thread; {k.PerStage} per stage"
      let sum = perIteration many
      let floor = (Timings.w1Interleaved 60)[1]
      value "W1 kernels" "sum per iteration (80 stages)" sum "ms" $"{threads} threads; each kernel alone, hot inputs; Adam and the readout not included"
      value "W1 kernels" "sum per iteration, 1 thread" (perIteration one) "ms" "the same kernels at one thread"
      timing "W1 floor" "iteration" floor "the same kernels in the iteration's order (Floor.fs), interleaved with W1 as in `w1`"
      value "W1 floor" "floor / kernel sum" (floor.Median / sum) "×" "what running in sequence costs over running alone: memory traffic, fresh allocations, thread hand-offs" ]
