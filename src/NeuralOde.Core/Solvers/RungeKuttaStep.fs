/// One explicit Runge–Kutta step over any Butcher tableau (Hairer, Nørsett & Wanner, "Solving ODEs I", §II.1).
module internal NeuralOde.Core.RungeKuttaStep

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The result of one step from (t, y) with step h.
type StepResult =
    { /// The solution at t + h.
      Y1: Tensor
      /// The stages k_1 … k_s.
      Ks: Tensor[]
      /// The embedded error estimate h Σ e_i k_i, for adaptive tableaux.
      Error: Tensor option }

/// Takes one step. `k1` is f(t, y), already evaluated (the previous step's last stage for FSAL methods).
/// For FSAL tableaux Y1 is the point the last stage was evaluated at, so f(t + h, Y1) = Ks[s−1].
let step (tableau: NeuralOde.Core.ButcherTableau) (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (h: float) (k1: Tensor) =
    let s = tableau.Stages
    let ks = Array.zeroCreate<Tensor> s
    ks[0] <- k1
    let mutable y1: Tensor = null
    for i in 1 .. s - 1 do
        let yi = TensorOps.combine y h tableau.A[i] ks
        ks[i] <- f (t + tableau.C[i] * h) yi
        if i = s - 1 && tableau.Fsal then y1 <- yi else yi.Dispose()
    if isNull y1 then y1 <- TensorOps.combine y h tableau.B ks
    let error = tableau.E |> Option.map (fun e -> TensorOps.weightedSum h e ks)
    { Y1 = y1; Ks = ks; Error = error }
