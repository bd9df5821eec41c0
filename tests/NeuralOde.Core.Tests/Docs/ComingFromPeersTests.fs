/// The defects of torchdyn and torchdiffeq that docs/coming-from-torchdyn.md says NeuralOde does not share, each shown
/// here (float64, fixed seeds). Their behaviour is reproduced from their source (torchdyn 95cc74b: core/neuralde.py,
/// nn/galerkin.py; torchdiffeq 657943a: _impl/rk_common.py), not run: the page quotes the lines.
module NeuralOde.Tests.Docs.ComingFromPeersTests

open System
open Expecto
open MathNet.Numerics.Integration
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core

let private f64 = torch.float64

/// L(w) for an encoder x ↦ w·x before a data-controlled block (field g([z; x_c])), z(0) = encoded x; `detachControl`
/// reproduces torchdyn, which hands the field `x[:, excess_dims:].detach()` as the control.
let private controlledLoss (w: torch.Tensor) (x: torch.Tensor) (g: Module<torch.Tensor, torch.Tensor>) (detachControl: bool) (sensitivity: Sensitivity) =
    let encoded = x * w
    let control = if detachControl then encoded.detach() else encoded
    let f: VectorField = fun _ z -> g.forward (torch.cat([| z; control |], 1L))
    let parameters = [ yield w; yield! g.parameters() |> Seq.map (fun p -> p :> torch.Tensor) ]
    let problem = OdeProblem.create f encoded [| 0.0; 1.0 |] |> OdeProblem.withParameters parameters
    use solution = Ode.solveWith sensitivity problem Solvers.rk4 (StepControl.steps 20)
    solution.Final.square().sum()

[<Tests>]
let tests =
    testList "ComingFromPeers" [
        test "a data-controlled block passes gradients to the layers before it, through the control (torchdyn detaches the control)" {
            torch.manual_seed 11L |> ignore
            use g = Sequential(Linear(2L, 8L, dtype = f64), Tanh(), Linear(8L, 1L, dtype = f64))
            use x = torch.linspace(-1.0, 1.0, 6L, dtype = f64).reshape(-1L, 1L)
            let w0 = 0.7
            let value (w: float) =
                use _ = torch.no_grad()
                use wt = torch.tensor(w, dtype = f64)
                use l = controlledLoss wt x g false Sensitivity.Autograd
                l.ToDouble()
            let h = 1e-5
            let finiteDifference = (value (w0 + h) - value (w0 - h)) / (2.0 * h)
            let gradient (detach: bool) (sensitivity: Sensitivity) =
                use w = torch.tensor(w0, dtype = f64, requires_grad = true)
                use l = controlledLoss w x g detach sensitivity
                Ode.backward l
                w.grad.ToDouble()
            // The block's own path: the same field in NeuralOdeModel with DataControl, the encoder before it.
            let blockGradient (sensitivity: Sensitivity) =
                use w = torch.tensor(w0, dtype = f64, requires_grad = true)
                // Not disposed here: disposing the block would dispose g, which the other calls reuse.
                let block = new NeuralOdeModel(Sequential(new DataControl(), g), Solvers.rk4, StepControl.steps 20, sensitivity, [| 0.0; 1.0 |])
                use l = block.forward(x * w).square().sum()
                Ode.backward l
                w.grad.ToDouble()
            for sensitivity in [ Sensitivity.Autograd; Sensitivity.adjoint ] do
                let ours = blockGradient sensitivity
                Expect.floatClose { absolute = 1e-7; relative = 1e-6 } ours finiteDifference $"NeuralOde's block ({sensitivity}): dL/dw = finite differences"
                let detached = gradient true sensitivity
                Expect.isGreaterThan (abs (detached - finiteDifference)) (0.01 * abs finiteDifference)
                    $"with the control detached, as torchdyn does, dL/dw is wrong ({detached} against {finiteDifference})"
        }

        test "the Fourier basis has no identically-zero function and is orthogonal (torchdyn's Fourier(deg) has sin(0·s) and a full Gram matrix)" {
            // torchdyn: n_range = linspace(0, deg, deg); basis [cos(s·n), sin(s·n)] for each n (nn/galerkin.py).
            let deg = 5
            let n = Array.init deg (fun i -> float deg * float i / float (deg - 1))
            let theirs (s: float) = Array.append (n |> Array.map (fun k -> cos (s * k))) (n |> Array.map (fun k -> sin (s * k)))
            let gram (values: float -> float[]) (terms: int) (domain: float) =
                Array2D.init terms terms (fun i j -> GaussLegendreRule.Integrate((fun s -> (values s)[i] * (values s)[j]), 0.0, domain, 64))
            let their = gram theirs (2 * deg) 1.0
            Expect.isLessThan their[deg, deg] 1e-20 "torchdyn's sin(0·s) term is identically zero: its coefficients never change the layer"
            let largestOffDiagonal (m: float[,]) =
                seq { for i in 0 .. Array2D.length1 m - 1 do
                        for j in 0 .. Array2D.length2 m - 1 do
                            if i <> j then yield abs m[i, j] } |> Seq.max
            Expect.isGreaterThan (largestOffDiagonal their) 0.1 "torchdyn's functions are far from orthogonal on [0, 1]"
            let basis = Basis.fourier 2 1.0   // 5 terms, as many nonzero functions as torchdyn's deg = 5 gives at most
            let ours = gram (Basis.valuesAt basis) basis.Terms 1.0
            Expect.isLessThan (largestOffDiagonal ours) 1e-12 "ours: orthogonal"
            for j in 0 .. basis.Terms - 1 do
                Expect.isGreaterThan ours[j, j] 0.4 $"ours: ψ_{j} has norm {ours[j, j]}"
        }

        test "a solve that needs ever smaller steps stops with a named failure at its time (torchdiffeq's default budget is 2^31 − 1 steps)" {
            // dx/dt = x², x(0) = 1 blows up at t = 1. torchdiffeq's adaptive solvers default to max_num_steps = 2**31 − 1
            // and check underflow with `assert t0 + dt > t0, 'underflow in dt …'` (no time; gone under python -O).
            use x0 = torch.ones([| 1L |], dtype = f64)
            let failure =
                try
                    use _ = Ode.odeint (fun _ x -> x.square()) x0 [| 0.0; 2.0 |] Solvers.dopri5 (StepControl.adaptive 1e-8 1e-10)
                    None
                with :? OdeSolveException as e -> Some e
            match failure with
            | None -> failwith "the solve through the blow-up returned"
            | Some e ->
                Expect.contains [ OdeFailure.StepSizeUnderflow; OdeFailure.MaxStepsExceeded; OdeFailure.NonFiniteValue ] e.Failure "a named failure"
                Expect.isLessThan (abs (e.Time - 1.0)) 1e-2 $"at the blow-up time (t = {e.Time})"
                Expect.stringContains e.Message "t = " $"the message gives the time: {e.Message}"
        }
    ]
