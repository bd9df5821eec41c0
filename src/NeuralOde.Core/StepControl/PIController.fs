/// The PI step-size controller (Söderlind 2002, "Automatic control and adaptive time-stepping"; Hairer & Wanner,
/// "Solving ODEs II", §IV.2): h_new = h · clip(safety · ε_n^(−β_I/k) · ε_{n−1}^(β_P/k), minFactor, maxFactor),
/// where ε is the scaled error norm and k = (error order) + 1. β_P = 0 gives the classical I controller.
module internal NeuralOde.Core.PIController

/// The factor by which the next step is scaled. `error` is this step's scaled error, `previousError` the last
/// accepted step's (1.0 before there is one). A rejected step (error > 1) never grows.
let factor (o: NeuralOde.Core.AdaptiveOptions) (errorOrder: int) (error: float) (previousError: float) =
    let k = float (errorOrder + 1)
    let raw =
        if error = 0.0 then o.MaxFactor
        else o.Safety * (error ** (-(o.ICoeff + o.PCoeff) / k)) * (previousError ** (o.PCoeff / k))
    let clipped = min o.MaxFactor (max o.MinFactor raw)
    if error > 1.0 then min 1.0 clipped else clipped
