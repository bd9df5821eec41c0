/// The paper's Figure 1 setting (Massaroli et al. 2020; torchdyn's generalized-adjoint tutorial, spec §7.2), scaled
/// to run in seconds: a Galerkin Neural ODE trained with an integral loss only, ℓ = ∫_0^1 mean ‖z(s) − γ(s)‖² ds with
/// γ(s) = (cos 2πs, sin 2πs), from initial conditions x ~ (1, 0) + 0.5·N(0, I), by the generalized adjoint
/// (dopri5). Scaled down from the tutorial: width 32 instead of 64, batch 128 instead of 4096, 120 Adam steps at
/// lr 1e-2 instead of 1500 at 1e-3, tolerances 1e-4 instead of 1e-6.
module NeuralOde.Tests.Models.Figure1TrackingTests

open System
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private gamma (s: float) = [| cos (2.0 * Math.PI * s); sin (2.0 * Math.PI * s) |]

let private trackingLoss: IntegralLoss =
    fun s z ->
        use target = torch.tensor(gamma s, dtype = z.dtype)
        (z - target).square().sum(1L).mean()

[<Tests>]
let tests =
    testList "Models/Figure 1" [
        test "a Galerkin Neural ODE learns to track a periodic signal with an integral loss (generalized adjoint)" {
            let galerkin = new GalLinear(2L, 32L, Basis.fourier 2 1.0, torch.float32)
            use readout = Linear(32L, 2L)
            Tensors.initialize 31 0.1 readout
            let field: VectorField = fun s z -> readout.forward(galerkin.forward(z, s).tanh())
            let parameters = Seq.append (galerkin.parameters()) (readout.parameters()) |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq
            use opt = torch.optim.Adam(Seq.append (galerkin.parameters()) (readout.parameters()), 1e-2)
            use g = torch.Generator(30UL)
            let sample (n: int64) (sigma: float) =
                use noise = torch.randn([| n; 2L |], generator = g)
                use centre = torch.tensor([| 1.0f; 0.0f |])
                centre + noise * sigma
            let trackingError (x0: torch.Tensor) (sensitivity: Sensitivity) =
                let problem =
                    OdeProblem.create field x0 [| 0.0; 1.0 |]
                    |> OdeProblem.withParameters parameters
                    |> OdeProblem.withIntegralLoss trackingLoss
                Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-4 1e-4)
            let evaluate () =
                use _ = torch.no_grad()
                use x0 = sample 100L 0.2
                use solution = trackingError x0 Sensitivity.Autograd
                solution.Integral.Value.ToDouble()
            let before = evaluate ()
            for _ in 1 .. 120 do
                use scope = torch.NewDisposeScope()
                let x0 = sample 128L 0.5
                opt.zero_grad()
                let solution = trackingError x0 Sensitivity.adjoint
                solution.Integral.Value.backward()
                opt.step() |> ignore
            let after = evaluate ()
            Expect.isLessThan after 0.05 $"tracking error ∫ mean ‖z − γ‖² fell from {before:F4} to {after:F4}; threshold 0.05"
            Expect.isGreaterThan before 0.5 "and it started far from the signal"
        }
    ]
