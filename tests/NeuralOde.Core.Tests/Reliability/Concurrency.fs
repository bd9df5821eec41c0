/// One block from two threads at once, and two blocks on two threads: scenarios run in a child process (an unsafe
/// library dies there with SIGSEGV or a heap-corruption abort, which must fail the test, not the runner). Each thread
/// solves its own fixed input again and again and compares the output and the gradients (torch.autograd.grad: no
/// shared .grad accumulation) with the ones computed before on one thread.
module NeuralOde.Tests.Reliability.Concurrency

open System
open System.Threading
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

/// A block on a Linear–Tanh–Linear field (float32: the fused kernels' SIMD path), or on a DepthCat field.
let private block (sensitivity: Sensitivity) (fused: bool) (depthCat: bool) =
    torch.manual_seed(31L) |> ignore
    let field: Module<torch.Tensor, torch.Tensor> =
        if depthCat then Sequential(new DepthCat() :> Module<torch.Tensor, torch.Tensor>, Linear(5L, 16L), Tanh(), Linear(16L, 4L))
        else Sequential(Linear(4L, 16L), Tanh(), Linear(16L, 4L))
    let control = match sensitivity with Sensitivity.Autograd -> StepControl.steps 8 | _ -> StepControl.adaptive 1e-4 1e-6
    let solver = Solvers.dopri5
    let m = new NeuralOdeModel(field, solver, control, sensitivity, [| 0.0; 1.0 |])
    m.Backend <- Compiled.choice (fused)
    m

/// Output and parameter gradients of one pass.
let private pass (m: NeuralOdeModel) (x: torch.Tensor) (withGradient: bool) =
    use _ = torch.NewDisposeScope()
    if withGradient then
        let y = m.forward x
        let loss = y.square().sum()
        let ps = m.parameters() |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq
        let gs = torch.autograd.grad(Collections.Generic.List<torch.Tensor>([ loss ]), Collections.Generic.List<torch.Tensor>(ps))
        Array.append (Tensors.toArray y) (gs |> Seq.toArray |> Array.collect Tensors.toArray)
    else
        use _ = torch.no_grad()
        Tensors.toArray (m.forward x)

/// Two threads on `models` (the same block twice, or two blocks), `iterations` passes each on inputs of their own;
/// Passed when no pass raised and every result equals its single-threaded reference to float32 rounding.
let private run (models: NeuralOdeModel[]) (withGradient: bool) (iterations: int) =
    let inputs = Array.init 2 (fun i -> torch.randn([| 300L + int64 i * 37L; 4L |], generator = torch.Generator(uint64 (40 + i))))
    let reference = Array.init 2 (fun i -> pass models[i] inputs[i] withGradient)
    let worst = Array.zeroCreate<float> 2
    let failures = Collections.Concurrent.ConcurrentBag<string>()
    let threads =
        Array.init 2 (fun i ->
            Thread((fun () ->
                try
                    for _ in 1 .. iterations do
                        let r = pass models[i] inputs[i] withGradient
                        let scale = reference[i] |> Array.map abs |> Array.max
                        worst[i] <- max worst[i] (Array.map2 (fun a b -> abs (a - b)) r reference[i] |> Array.max |> fun d -> d / scale)
                with e -> failures.Add $"thread {i}: {e.GetType().Name}: {e.Message}"), 16 * 1024 * 1024))
    for t in threads do t.Start()
    for t in threads do t.Join()
    printfn "worst relative difference from the single-threaded results: %A; failures: %A" worst (List.ofSeq failures)
    if failures.IsEmpty && worst |> Array.forall (fun w -> w <= 1e-5) then Child.Passed else Child.CheckFailed

let private oneBlock sensitivity fused depthCat withGradient () =
    let m = block sensitivity fused depthCat
    run [| m; m |] withGradient 150

let private twoBlocks sensitivity fused () =
    run [| block sensitivity fused false; block sensitivity fused false |] true 150

/// An ensemble: 16 problems on one shared module field (adjoint, gradients by torch.autograd.grad), solved by
/// Parallel.For and one after another: the same outputs and gradients.
let private ensemble () =
    torch.manual_seed(33L) |> ignore
    let field = Sequential(Linear(3L, 12L), Tanh(), Linear(12L, 3L))
    let ps = field.parameters() |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq
    let x0s = Array.init 16 (fun i -> torch.randn([| 20L; 3L |], generator = torch.Generator(uint64 (60 + i))))
    let solveOne (i: int) =
        use _ = torch.NewDisposeScope()
        let problem = OdeProblem.create (ModuleField.create field null) x0s[i] [| 0.0; 0.5; 1.0 |] |> OdeProblem.withParameters ps
        use solution = Ode.solveWith Sensitivity.adjoint problem Solvers.dopri5 (StepControl.adaptive 1e-5 1e-7)
        let loss = solution.States.square().sum()
        let gs = torch.autograd.grad(Collections.Generic.List<torch.Tensor>([ loss ]), Collections.Generic.List<torch.Tensor>(ps))
        Array.append (Tensors.toArray solution.States) (gs |> Seq.toArray |> Array.collect Tensors.toArray)
    let sequential = Array.init 16 solveOne
    let parallel = Array.zeroCreate<float[]> 16
    Tasks.Parallel.For(0, 16, Tasks.ParallelOptions(MaxDegreeOfParallelism = 4), fun i -> parallel[i] <- solveOne i) |> ignore
    let worst = Array.map2 (fun (a: float[]) (b: float[]) -> Array.map2 (fun x y -> abs (x - y)) a b |> Array.max) sequential parallel |> Array.max
    printfn "ensemble of 16, 4 at a time: largest difference from the sequential results %g" worst
    if worst = 0.0 then Child.Passed else Child.CheckFailed

/// The scenarios, by name.
let scenarios =
    [ "one-block-fused-autograd", oneBlock Sensitivity.Autograd true false true
      "one-block-fused-adjoint", oneBlock Sensitivity.adjoint true false true
      "one-block-generic-autograd", oneBlock Sensitivity.Autograd false false true
      "one-block-generic-adjoint", oneBlock Sensitivity.adjoint false false true
      "one-block-depthcat-forward", oneBlock Sensitivity.Autograd false true false
      "two-blocks-fused-adjoint", twoBlocks Sensitivity.adjoint true
      "two-blocks-generic-autograd", twoBlocks Sensitivity.Autograd false
      "two-blocks-generic-adjoint", twoBlocks Sensitivity.adjoint false
      "parallel-ensemble", ensemble ]
