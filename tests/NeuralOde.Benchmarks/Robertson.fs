/// W11 stiff, ours: Robertson's kinetics of ../shared/bench-peers/w11_events_torchdiffeq.py --part stiff, float64:
/// y1' = −k1 y1 + k3 y2 y3, y2' = k1 y1 − k2 y2² − k3 y2 y3, y3' = k2 y2², y(0) = (1, 0, 0), k = (0.04, 3e7, 1e4)·exp θ,
/// θ learnable from (0.1, −0.1, 0.1); outputs at 0, 1e-5, 1e-4, …, 1; loss = mean of ((y − y*)/s)² over the outputs
/// after t = 0 (s_i = max_t |y*_i|); targets at θ = 0 by Kvaerno5 at rtol 1e-12 with every output time a step end;
/// the solve adaptive at rtol 1e-6, atol 1e-10 by the trainer's solver (Kvaerno5, Rodas4 or the stiffness switcher),
/// gradients by autograd through the Newton iterations or the linear solves; Adam 0.01.
module NeuralOde.Benchmarks.Robertson

open TorchSharp
open NeuralOde.Core

let private f64 = torch.float64
let times = [| 0.0; 1e-5; 1e-4; 1e-3; 1e-2; 1e-1; 1.0 |]

let private field (theta: torch.Tensor) =
    let k0 = torch.tensor([| 0.04; 3e7; 1e4 |], dtype = f64)
    fun (_: float) (y: torch.Tensor) ->
        let k = k0.mul(theta.exp())
        let y1, y2, y3 = y.[0], y.[1], y.[2]
        let r1 = k.[0].mul(y1)
        let r2 = k.[1].mul(y2.square())
        let r3 = k.[2].mul(y2).mul(y3)
        torch.stack([| r3.sub(r1); r1.sub(r2).sub(r3); r2 |])

/// y at `times` for θ = 0, each output time a step end (no interpolation), rtol 1e-12.
let targets () =
    use _ = torch.no_grad()
    use theta = torch.zeros([| 3L |], dtype = f64)
    let f = field theta
    let mutable y = torch.tensor([| 1.0; 0.0; 0.0 |], dtype = f64)
    let states = ResizeArray([ y ])
    for i in 1 .. times.Length - 1 do
        use s = Ode.solve (OdeProblem.create f y [| times.[i - 1]; times.[i] |]) Solvers.kvaerno5 (StepControl.adaptive 1e-12 1e-20)
        y <- s.Final.clone()
        states.Add y
    torch.stack(states)

type Trainer(solver: ButcherTableau) =
    let theta = new Modules.Parameter(torch.tensor([| 0.1; -0.1; 0.1 |], dtype = f64))
    let optimizer = torch.optim.Adam([| theta |], 0.01)
    let target = targets ()
    let scale = target.abs().amax([| 0L |])
    let after (x: torch.Tensor) = x.narrow(0L, 1L, x.shape.[0] - 1L)
    member val Steps = 0 with get, set
    member val Evaluations = 0 with get, set

    member t.Step() =
        use _ = torch.NewDisposeScope()
        optimizer.zero_grad()
        use y0 = torch.tensor([| 1.0; 0.0; 0.0 |], dtype = f64)
        use s = Ode.solve (OdeProblem.create (field theta) y0 times) solver (StepControl.adaptive 1e-6 1e-10)
        t.Steps <- s.Statistics.AcceptedSteps
        t.Evaluations <- s.Statistics.FunctionEvaluations
        let loss = (after s.States).sub(after target).div(scale).square().mean()
        loss.backward()
        optimizer.step() |> ignore
        loss.ToDouble()

    /// The solve at the true rates: its error in tolerance units |y − y*| / (atol + rtol |y*|), the worst over the
    /// outputs after t = 0.
    member _.ErrorAtTruth() =
        use _ = torch.no_grad()
        use zero = torch.zeros([| 3L |], dtype = f64)
        use y0 = torch.tensor([| 1.0; 0.0; 0.0 |], dtype = f64)
        use s = Ode.solve (OdeProblem.create (field zero) y0 times) solver (StepControl.adaptive 1e-6 1e-10)
        let units = (after s.States).sub(after target).abs().div((after target).abs().mul(torch.tensor(1e-6, dtype = f64)).add(torch.tensor(1e-10, dtype = f64)))
        units.max().ToDouble()

    member _.Theta = theta.data<float>().ToArray()
