/// The main job: trains a Neural ODE classifier on concentric annuli on the CPU, prints progress and accuracy, and
/// writes a figure of the learned trajectories.
///
/// A 2-D Neural ODE flow is a homeomorphism of the plane, so it cannot pull the inner circle out of the outer one
/// (Dupont et al. 2019; Massaroli et al. 2020, §6.4). The state is augmented with one zero coordinate (ANODE's
/// 0-augmentation): z(0) = [x; 0], and the flow lifts the inner class along the new axis, where a linear readout
/// separates the classes.
module AnnuliDemo.Program

open System
open System.IO
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets

[<EntryPoint>]
let main argv =
    let outDir = if argv.Length > 0 then argv[0] else Path.Combine("out", "demo")
    let iterations = if argv.Length > 1 then int argv[1] else 300
    Directory.CreateDirectory(outDir) |> ignore
    torch.set_num_threads 2
    torch.manual_seed(0L) |> ignore
    use generator = torch.Generator(42UL)

    let field = Sequential(Linear(3L, 64L), Tanh(), Linear(64L, 64L), Tanh(), Linear(64L, 3L))
    use model = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
    use readout = Linear(3L, 2L)
    use optimizer = torch.optim.Adam(Seq.append (model.parameters()) (readout.parameters()), 0.01)
    let augment (x: torch.Tensor) =
        use zeros = torch.zeros([| x.shape[0]; 1L |])
        torch.cat(([| x; zeros |]: torch.Tensor[]), 1L)
    let classify (x: torch.Tensor) =
        use z0 = augment x
        use zS = model.forward(z0)
        readout.forward(zS)

    printfn "NeuralOde demo: Neural ODE (RK4, 10 steps, 0-augmented to 3-D) on concentric annuli, %d iterations" iterations
    let clock = Diagnostics.Stopwatch.StartNew()
    for i in 1 .. iterations do
        use _ = torch.NewDisposeScope()
        let x, y = Annuli.sample 512 0.1 torch.float32 generator
        optimizer.zero_grad()
        let loss = functional.cross_entropy(classify x, y)
        loss.backward()
        optimizer.step() |> ignore
        if i = 1 || i % 50 = 0 then
            printfn "  iteration %4d  loss %.4f  (%.1f s)" i (loss.ToDouble()) clock.Elapsed.TotalSeconds

    use _ = torch.NewDisposeScope()
    use _ = torch.no_grad()
    let x, y = Annuli.sample 2000 0.1 torch.float32 generator
    let accuracy = (classify x).argmax(1L).eq(y).to_type(torch.float64).mean().ToDouble()
    printfn "test accuracy on 2000 fresh points: %.1f%%" (100.0 * accuracy)

    // Trajectories of 125 test points from both classes (every 16th) over 41 depths.
    use picked = torch.arange(0L, 2000L, 16L)
    let shown = picked.shape[0]
    use z0 = augment (x.index_select(0L, picked))
    use solution = model.Trajectory(z0, Array.init 41 (fun k -> float k / 40.0))
    let states = solution.States.to_type(torch.float64).contiguous().data<float>().ToArray()
    let labels = y.index_select(0L, picked).data<int64>().ToArray()
    let at k i c = states[(k * int shown + i) * 3 + c]
    let paths c1 c2 = Array.init (int shown) (fun i -> Array.init 41 (fun k -> at k i c1, at k i c2))
    let file = Path.Combine(outDir, "annuli-trajectories.png")
    Plot.trajectories "Neural ODE trajectories: input plane (z1, z2)" "z1" "z2" (paths 0 1) labels file
    let lifted = Path.Combine(outDir, "annuli-lift.png")
    Plot.trajectories "The augmented coordinate separates the classes (z1, z3)" "z1" "z3 (augmented)" (paths 0 2) labels lifted
    printfn "figures: %s, %s" file lifted
    if accuracy < 0.9 then
        eprintfn "accuracy below 90%%: training did not converge"
        1
    else 0
