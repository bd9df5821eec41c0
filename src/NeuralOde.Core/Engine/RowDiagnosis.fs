/// Which rows of a batched state a failed solve is attributed to. A batch shares one step size, so one exploding or
/// stiff row stops every row; this names the rows that did it (along the first dimension), so that they can be dropped
/// and the rest solved again (Rows.trySolve).
module internal NeuralOde.Core.RowDiagnosis

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The rows (indices along dimension 0) of x that hold NaN or Inf.
let nonFiniteRows (x: Tensor) : int[] =
    if isNull x || x.IsInvalid || x.dim() = 0L || x.numel() = 0L then [||]
    else
        use _ = torch.no_grad()
        use _ = torch.NewDisposeScope()
        use finite = torch.isfinite x
        use rows = finite.reshape(x.shape[0], -1L).all(1L)
        use bad = rows.logical_not().nonzero().flatten()
        bad.data<int64>().ToArray() |> Array.map int

/// The rows a solve that failed at (t, y), with f(t, y) = fy and last trial step h, is attributed to: rows of y or fy
/// that hold NaN or Inf; else the rows whose trial step of h from (t, y) gives NaN or Inf; else, under adaptive
/// control, the rows whose scaled error of that trial exceeds 1 (the rows that drove the step down), or the row with
/// the largest error. Empty for a 0-dim state or when nothing singles a row out (the trial itself raised, or fixed
/// steps with every row finite).
let rows (tableau: ButcherTableau) (f: float -> Tensor -> Tensor) (control: StepControl) (t: float) (y: Tensor) (fy: Tensor) (h: float) : int[] =
    if isNull y || y.IsInvalid || y.dim() = 0L || y.numel() = 0L then [||]
    else
    match Array.append (nonFiniteRows y) (nonFiniteRows fy) |> Array.distinct |> Array.sort with
    | bad when bad.Length > 0 -> bad
    | _ when isNull fy || fy.IsInvalid || h = 0.0 || System.Double.IsNaN h || System.Double.IsInfinity h -> [||]
    | _ ->
    try
        use _ = torch.no_grad()
        use _ = torch.NewDisposeScope()
        let adaptive = match control with StepControl.Adaptive _ -> true | _ -> false
        let r = RungeKuttaStep.step (State.TensorAlgebra.Shared :> State.IStateAlgebra<Tensor>) tableau adaptive f t y h fy
        let stages = r.Ks |> Array.collect nonFiniteRows
        match Array.append (nonFiniteRows r.Y1) stages |> Array.distinct |> Array.sort with
        | bad when bad.Length > 0 -> bad
        | _ ->
        match control with
        | StepControl.Adaptive o ->
            let errors = ErrorNorm.scaledRows o.RTol o.ATol r.Error y r.Y1
            match errors |> Array.indexed |> Array.filter (fun (_, e) -> not (e <= 1.0)) |> Array.map fst with
            | bad when bad.Length > 0 -> bad
            | _ -> [| errors |> Array.indexed |> Array.maxBy snd |> fst |]
        | _ -> [||]
    with _ -> [||]
