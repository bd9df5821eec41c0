module NeuralOde.Tests.StepControl.StepControlTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

let private options = StepControl.defaults

[<Tests>]
let tests =
    testList "StepControl" [
        test "PI controller: the I controller's factor is safety·ε^(−1/(q+1))" {
            let f = PIController.factor options 4 0.5 1.0
            Expect.floatClose Accuracy.veryHigh f (0.9 * 0.5 ** (-1.0 / 5.0)) "I controller"
        }
        test "PI controller: the proportional term uses the previous error" {
            let pi = { options with PCoeff = 0.4; ICoeff = 0.3 }
            let f = PIController.factor pi 4 0.5 0.25
            Expect.floatClose Accuracy.veryHigh f (0.9 * 0.5 ** (-0.7 / 5.0) * 0.25 ** (0.4 / 5.0)) "PI controller"
        }
        test "PI controller: a rejected step never grows and factors stay within their bounds" {
            Expect.isLessThanOrEqual (PIController.factor options 4 1.5 1e-4) 1.0 "rejected"
            Expect.equal (PIController.factor options 4 1e6 1.0) options.MinFactor "shrink bound"
            Expect.equal (PIController.factor options 4 1e-12 1.0) options.MaxFactor "growth bound"
            Expect.equal (PIController.factor options 4 0.0 1.0) options.MaxFactor "zero error"
        }
        // The norm is computed in a rearranged form (fewer kernels): check it against eq. (4.11) written literally,
        // on the host in float64, over tolerances whose ratio atol/rtol spans 1e-6 … 1e6 and states of mixed scale.
        for dtype, accuracy in [ torch.float64, 1e-12; torch.float32, 1e-5 ] do
            for rtol, atol in [ 1e-6, 1e-9; 1e-3, 1e-3; 1e-8, 1e-2; 0.5, 1e-12 ] do
                test $"the scaled error norm is eq. (4.11): RMS of err / (atol + rtol·max(|y0|, |y1|)) ({dtype}, rtol {rtol}, atol {atol})" {
                    use generator = new torch.Generator(11UL)
                    let draw () =
                        use z = torch.randn([| 3L; 7L |], dtype = torch.float64, generator = generator)
                        use magnitudes = torch.logspace(-4.0, 3.0, 7L, dtype = torch.float64)
                        z.mul(magnitudes)
                    use err64 = draw ()
                    use y064 = draw ()
                    use y164 = draw ()
                    let e, a, b = Tensors.toArray err64, Tensors.toArray y064, Tensors.toArray y164
                    let expected =
                        Array.init e.Length (fun i -> e[i] / (atol + rtol * max (abs a[i]) (abs b[i])))
                        |> Array.averageBy (fun r -> r * r)
                        |> sqrt
                    use err = err64.to_type dtype
                    use y0 = y064.to_type dtype
                    use y1 = y164.to_type dtype
                    use norm = ErrorNorm.scaled rtol atol err y0 y1
                    Expect.equal norm.dtype dtype "the state's dtype"
                    Expect.equal norm.shape.Length 0 "a 0-dim tensor"
                    Expect.floatClose { absolute = 0.0; relative = accuracy } (norm.ToDouble()) expected "eq. (4.11)"
                }
        test "a PI-controlled solve meets the tolerance too" {
            use x0 = Tensors.f64 [| 1.0; -0.5 |]
            let control = StepControl.Adaptive { options with RTol = 1e-8; ATol = 1e-10; PCoeff = 0.4; ICoeff = 0.3 }
            use solution = Ode.odeint (Problems.linear Problems.oscillatory) x0 [| 0.0; 5.0 |] Solvers.dopri5 control
            let expected = Reference.linearSolution Problems.oscillatory [| 1.0; -0.5 |] 0.0 5.0
            let got = Tensors.toArray solution.Final
            Array.iter2 (fun g e -> Expect.isLessThan (abs (g - e)) (10.0 * (1e-10 + 1e-8 * abs e)) "within 10× tolerance") got expected
        }
        test "the first-step heuristic gives a positive step no longer than the span" {
            use x0 = Tensors.f64 [| 1.0; -0.5 |]
            let f = Problems.linear Problems.stiffish
            use f0 = f 0.0 x0
            let h = InitialStep.select (State.TensorAlgebra.Shared :> State.IStateAlgebra<torch.Tensor>) f 0.0 x0 f0 1.0 4 1e-6 1e-9 0.3
            Expect.isGreaterThan h 0.0 "positive"
            Expect.isLessThanOrEqual h 0.3 "within the span"
        }
        for solver in [ Solvers.dopri5; Solvers.tsit5; Solvers.bosh3 ] do
            test $"{solver.Name}/float32 meets a float32 tolerance" {
                use x0 = torch.tensor([| 1.0f; 2.0f |])
                use solution = Ode.odeint (fun _ x -> x.neg()) x0 [| 0.0; 0.5; 2.0 |] solver (StepControl.adaptive 1e-5 1e-6)
                Expect.equal solution.States.dtype torch.float32 "stays float32"
                let got = Tensors.toArray solution.States
                let expected = [| 1.0; 2.0; exp -0.5; 2.0 * exp -0.5; exp -2.0; 2.0 * exp -2.0 |]
                Array.iter2 (fun g e -> Expect.isLessThan (abs (g - e)) (10.0 * (1e-6 + 1e-5 * abs e)) "within 10× tolerance") got expected
            }
    ]
