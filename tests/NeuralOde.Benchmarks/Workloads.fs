/// The benchmark workloads. All train a Neural ODE classifier on 2-D concentric annuli (linear readout,
/// cross-entropy, Adam at 1e-3, float32) and differ in the block:
///   W1  MLP 2→64→64→2 with tanh, RK4 with 20 steps on [0, 1], autograd through the solver, batch 1024;
///   W2  the same with Dopri5, rtol = atol = 1e-5 and the adjoint;
///   W3  W1 at other batch sizes and widths;
///   W5  the peer's Galerkin model: GalLinear(2, 64) over a Fourier basis (5 harmonics: 11 coefficients per weight),
///       then tanh, Linear(64, 64), tanh, Linear(64, 2).
module NeuralOde.Benchmarks.Workloads

open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets

type Tensor = torch.Tensor

/// The device the trainers run on (`--device`; CPU by default). Data are drawn on the CPU and moved there.
let mutable device = torch.CPU

/// The MLP vector field 2 → width → width → 2 with tanh.
let mlp (width: int) =
    Sequential(Linear(2L, int64 width), Tanh(), Linear(int64 width, int64 width), Tanh(), Linear(int64 width, 2L))

/// The peer's W5 field (../shared/bench-peers/w5_torchdyn_galerkin.py: DepthCat(1) → GalLinear(2, W, Fourier(5)) → tanh
/// → Linear(W, W) → tanh → Linear(W, 2)) as a Sequential: GalLinear(2, W) over a Fourier basis in depth (ours: 1,
/// cos 2πks, sin 2πks for k = 1..harmonics; torchdyn's Fourier(5): cos ks, sin ks for k = 0..4), told the depth by the
/// block instead of through a concatenated feature.
let galerkinField (width: int) (harmonics: int) =
    let galerkin = new GalLinear(2L, int64 width, Basis.fourier harmonics 1.0)
    // GalLinear starts at zero (torchdyn's choice); small random coefficients make the benchmark's layer active
    // (the cost per iteration does not depend on the values: RK4 with fixed steps).
    (use _ = torch.no_grad() in galerkin.Coefficients.normal_(0.0, 0.05) |> ignore)
    Sequential(galerkin :> Module<Tensor, Tensor>, Tanh(), Linear(int64 width, int64 width), Tanh(), Linear(int64 width, 2L))

/// A trainer: `Step ()` runs one iteration (fresh annuli batch, forward, backward, Adam) in its own dispose scope
/// and returns the loss.
type Trainer(batch: int, block: Module<Tensor, Tensor>, seed: int) =
    let generator = new torch.Generator(uint64 seed)
    let readout = Linear(2L, 2L)
    do
        block.``to``(device) |> ignore
        readout.``to``(device) |> ignore
    let optimizer = torch.optim.Adam(Seq.append (block.parameters()) (readout.parameters()), 1e-3)

    member _.Block = block
    member _.Readout = readout
    member _.Optimizer = optimizer

    /// A fresh batch drawn from the trainer's generator.
    member _.Sample() =
        let x, y = Annuli.sample batch 0.1 torch.float32 generator
        if device.``type`` = DeviceType.CPU then x, y else x.``to``(device), y.``to``(device)

    member t.Step() =
        use _ = torch.NewDisposeScope()
        let x, y = t.Sample()
        optimizer.zero_grad()
        let loss = functional.cross_entropy(readout.forward(block.forward x), y)
        loss.backward()
        optimizer.step() |> ignore
        loss.ToDouble()

/// A Neural ODE block with the MLP field (the seed fixes the initial weights).
let odeBlock (width: int) (solver: ButcherTableau) (control: StepControl) (sensitivity: Sensitivity) (seed: int) =
    torch.manual_seed(int64 seed) |> ignore
    new NeuralOdeModel(mlp width, solver, control, sensitivity, [| 0.0; 1.0 |])

/// W1 at a batch size and width.
let w1 batch width seed =
    let block = odeBlock width Solvers.rk4 (StepControl.steps 20) Sensitivity.Autograd seed
    block, Trainer(batch, block, seed)

/// W2: Dopri5, rtol = atol = 1e-5, the adjoint.
let w2 seed =
    let block = odeBlock 64 Solvers.dopri5 (StepControl.adaptive 1e-5 1e-5) Sensitivity.adjoint seed
    block, Trainer(1024, block, seed)

/// W5: the peer's Galerkin model (GalLinear first, as torchdyn's W5), RK4 with 20 steps on [0, 1], autograd.
let w5 seed =
    torch.manual_seed(int64 seed) |> ignore
    let block = new NeuralOdeModel(galerkinField 64 5, Solvers.rk4, StepControl.steps 20, [| 0.0; 1.0 |])
    block, Trainer(1024, block, seed)

/// W1's iteration written as a plain TorchSharp RK4 loop (autograd, no library): what a user would write by hand.
type PlainRk4(width: int, steps: int, seed: int) =
    do torch.manual_seed(int64 seed) |> ignore
    let field = mlp width
    let block =
        { new Module<Tensor, Tensor>("plain_rk4") with
            override _.forward(x) =
                let h = 1.0 / float steps
                let mutable z = x
                for _ in 1 .. steps do
                    let k1 = field.forward z
                    let k2 = field.forward (z + (h / 2.0) * k1)
                    let k3 = field.forward (z + (h / 2.0) * k2)
                    let k4 = field.forward (z + h * k3)
                    z <- z + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
                z }
    do block.register_module("field", field)
    let trainer = Trainer(1024, block, seed)
    member _.Step() = trainer.Step()

/// W7: an FFJORD-style continuous normalizing flow, the peer's model (../shared/bench-peers/w7_cnf_torchdyn.py):
/// f = Linear(2, 64) → Softplus → Linear(64, 64) → Softplus → Linear(64, 2), time-invariant; Hutchinson's trace with
/// Gaussian probes drawn once per solve; Dopri5 at rtol = atol = 1e-5 forward and in the backsolve adjoint; 8 Gaussians
/// on a circle of radius 4/1.414 (std 0.5/1.414), a pool of 16,384 points consumed in consecutive batches of 512;
/// mean negative log-likelihood, Adam 1e-3. `Step ()` runs one iteration and returns the loss.
type CnfTrainer(seed: int) =
    do torch.manual_seed(int64 seed) |> ignore
    let field = Sequential(Linear(2L, 64L), Softplus(), Linear(64L, 64L), Softplus(), Linear(64L, 2L))
    let generator = new torch.Generator(uint64 seed)
    let flow =
        new Cnf("cnf", field, 2, Hutchinson Gaussian, Solvers.dopri5, StepControl.adaptive 1e-5 1e-5, Sensitivity.adjoint,
                0.0, 1.0, generator)
    let pool, _ =
        use g = new torch.Generator(1UL)
        GaussianMixture.sample (GaussianMixture.onCircle 8 (4.0 / 1.414) (0.5 / 1.414)) 16384 torch.float32 g
    let optimizer = torch.optim.Adam(flow.parameters(), 1e-3)
    let mutable next = 0L
    member _.Flow = flow
    member _.Step() =
        use _ = torch.NewDisposeScope()
        if next + 512L > pool.shape[0] then next <- 0L
        let x = pool.narrow(0L, next, 512L)
        next <- next + 512L
        optimizer.zero_grad()
        let loss = flow.LogProbability(x).mean().neg()
        loss.backward()
        optimizer.step() |> ignore
        loss.ToDouble()
