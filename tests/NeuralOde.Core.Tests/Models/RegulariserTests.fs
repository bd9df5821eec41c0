module NeuralOde.Tests.Models.RegulariserTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

let private f64 = torch.float64

let private asField (m: Module<torch.Tensor, torch.Tensor>) : VectorField = fun _ z -> m.forward z

/// ‖x(t1)‖² + ∫ l dt differentiated with respect to the field's parameters and x0.
let private gradients (field: Module<torch.Tensor, torch.Tensor>) (loss: unit -> IntegralLoss) (sensitivity: Sensitivity) =
    use scope = torch.NewDisposeScope()
    use x0 = (Tensors.f64m [| [| 0.5; -1.0 |]; [| 1.5; 0.2 |]; [| -0.3; 0.8 |] |]).requires_grad_(true)
    field.zero_grad()
    let problem =
        OdeProblem.onSpan (asField field) x0 0.0 1.0
        |> OdeProblem.withParameters (field.parameters() |> Seq.map (fun p -> p :> torch.Tensor))
        |> OdeProblem.withIntegralLoss (loss ())
    let solution = Ode.solveWith sensitivity problem Solvers.dopri5 Sensitivities.tight
    let total = solution.Final.square().sum() + solution.Integral.Value
    Ode.backward total
    let theta = [| for p in field.parameters() do yield! Tensors.toArray p.grad |]
    theta, Tensors.toArray x0.grad

/// ‖∂f/∂z‖²_F of a per-sample field at the single point z [1, d], from d vector–Jacobian products.
let private frobenius (field: Module<torch.Tensor, torch.Tensor>) (z: torch.Tensor) =
    use scope = torch.NewDisposeScope()
    use _ = torch.enable_grad()
    let zr = z.detach().requires_grad_(true)
    let fz = field.forward zr
    let d = z.shape[1]
    [ for i in 0L .. d - 1L ->
        let seed = torch.zeros_like(fz)
        seed.select(1L, i).fill_(Scalar.op_Implicit 1.0) |> ignore
        let row = torch.autograd.grad([| fz |], [| zr |], [| seed |], true, false)[0]
        row.square().sum().ToDouble() ] |> List.sum

let private meanAndError (xs: float[]) =
    let m = Array.average xs
    let var = (xs |> Array.sumBy (fun x -> (x - m) * (x - m))) / float (xs.Length - 1)
    m, sqrt (var / float xs.Length)

[<Tests>]
let tests =
    testList "Models/Regularisers" [
        let losses =
            [ "kinetic energy", (fun (f: VectorField) () -> Regularisers.kineticEnergy f)
              "Jacobian Frobenius", (fun (f: VectorField) () -> use g = new torch.Generator(3UL) in Regularisers.jacobianFrobenius f Rademacher g) ]
        for lossName, makeLoss in losses do
            // Sequenced: adjoint backward passes on several runner threads at once have failed intermittently in
            // this suite (Sensitivity/properties, Sensitivity/Galerkin); these run alone.
            testSequenced <| test $"{lossName}: dL/dθ and dL/dx0 agree between autograd and both adjoints" {
                use field = CnfTests.mlp 21 0.6 2L 16L
                let loss = makeLoss (asField field)
                let theta, x0 = gradients field loss Sensitivity.Autograd
                Expect.isGreaterThan (theta |> Array.sumBy abs) 0.0 "the loss depends on θ"
                for name, sensitivity in [ "adjoint", Sensitivity.adjoint; "interpolated adjoint", Sensitivity.interpolatedAdjoint ] do
                    let theta', x0' = gradients field loss sensitivity
                    let eTheta, eX = Tensors.relativeError theta' theta, Tensors.relativeError x0' x0
                    Expect.isLessThan eTheta 1e-6 $"{name}: dL/dθ relative error {eTheta:E2}"
                    Expect.isLessThan eX 1e-6 $"{name}: dL/dx0 relative error {eX:E2}"
            }
        for noise in [ Rademacher; Gaussian ] do
            test $"the Jacobian-Frobenius penalty ({noise}) equals ‖∂f/∂z‖²_F in expectation (8000 draws)" {
                use field = CnfTests.mlp 22 0.8 3L 16L
                use z = Tensors.f64m [| [| 0.3; -1.1; 0.7 |] |]
                let exact = frobenius field z
                use g = new torch.Generator(8UL)
                let draws =
                    [| for _ in 1 .. 8000 ->
                        use scope = torch.NewDisposeScope()
                        use _ = torch.no_grad()
                        (Regularisers.jacobianFrobenius (asField field) noise g 0.0 z).ToDouble() |]
                let mean, error = meanAndError draws
                Expect.isGreaterThan error 1e-3 "the draws vary"
                Expect.isLessThan (4.0 * error) (0.1 * exact) $"the test has power: 4 standard errors ({4.0 * error:F4}) are under 10 percent of {exact:F4}"
                Expect.isLessThan (abs (mean - exact)) (4.0 * error) $"mean {mean:F5} ± {error:F5} against {exact:F5}"
            }
        // Sequenced: run alone, as training under the parallel runner's contention for two cores is many times slower.
        testSequenced <| test "a kinetic-energy penalty makes the trained field cheaper to solve: fewer dopri5 evaluations (same seed, same task)" {
            // The task, x ↦ x + (2, 0), is solved by a straight flow; the field starts far from one (large weights),
            // and the endpoint loss alone leaves it curved. Measured: 62 evaluations unregularised, 38 regularised.
            let shift = Tensors.f64 [| 2.0; 0.0 |]
            let train (weight: float) =
                let field = CnfTests.mlp 31 1.0 2L 16L
                use g = new torch.Generator(4UL)
                use opt = torch.optim.Adam(field.parameters(), 0.05)
                let fits = ResizeArray()
                for _ in 1 .. 100 do
                    use scope = torch.NewDisposeScope()
                    let x = torch.randn([| 64L; 2L |], dtype = f64, generator = g)
                    let problem = OdeProblem.onSpan (asField field) x 0.0 1.0
                    let problem =
                        if weight = 0.0 then problem
                        else problem |> OdeProblem.withIntegralLoss (Regularisers.kineticEnergy (asField field))
                    let solution = Ode.solve problem Solvers.rk4 (StepControl.steps 4)
                    let mse = (solution.Final - (x + shift)).square().mean()
                    let loss = match solution.Integral with Some i -> mse + i * (weight / 64.0) | None -> mse
                    opt.zero_grad()
                    loss.backward()
                    opt.step() |> ignore
                    fits.Add(mse.ToDouble())
                field, fits[0], fits[fits.Count - 1]
            let evaluations (field: Module<torch.Tensor, torch.Tensor>) =
                use scope = torch.NewDisposeScope()
                use _ = torch.no_grad()
                use g = new torch.Generator(9UL)
                let x = torch.randn([| 256L; 2L |], dtype = f64, generator = g)
                use solution = Ode.odeint (asField field) x [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-7 1e-7)
                solution.Statistics.FunctionEvaluations
            let plain, _, plainFit = train 0.0
            let regularised, firstFit, regularisedFit = train 0.5
            use plain = plain
            use regularised = regularised
            let nPlain, nRegularised = evaluations plain, evaluations regularised
            let report = $"dopri5 evaluations at rtol = atol = 1e-7: {nPlain} unregularised (fit {plainFit:F3}), {nRegularised} with the kinetic penalty (fit {regularisedFit:F3}; {firstFit:F3} before training)"
            Expect.isLessThan regularisedFit (0.5 * firstFit) $"the regularised field still learns the map: {report}"
            Expect.isLessThan (float nRegularised) (0.75 * float nPlain) report
        }
        test "kinetic energy is Σ ‖f‖² over the batch" {
            use scope = torch.NewDisposeScope()
            let f: VectorField = fun _ z -> z * 2.0
            let l = Regularisers.kineticEnergy f 0.0 (Tensors.f64m [| [| 1.0; 2.0 |]; [| 0.0; -1.0 |] |])
            Expect.floatClose Accuracy.high (l.ToDouble()) 24.0 "4·(1 + 4 + 0 + 1)"
        }
    ]
