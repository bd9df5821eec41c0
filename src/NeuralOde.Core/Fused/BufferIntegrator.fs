/// The integration loop of Solve/Integrate.fs on flat buffers (managed arrays, Kernels.Buffer) instead of tensors: the
/// same steps, the same first-step heuristic, error norm (full or over the first channels: the seminorm), PI control,
/// dense output at output times and the same failures at the same times — with no tensor made per step. The fused
/// adjoint (FusedAdjoint.fs) solves its forward and backward problems with it; its system writes f(t, y) into a
/// buffer (the fused kernels for an MLP field and its vector–Jacobian products).
module internal NeuralOde.Core.Fused.BufferIntegrator

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Fused.Kernels
open NeuralOde.Core.Integrate

/// A system dy/dt = f(t, y) on flat buffers of `Length` elements.
type IBufferSystem =
    abstract Length: int
    /// Writes f(t, y) into dy (y is left unchanged).
    abstract Evaluate: t: float * y: Buffer * dy: Buffer -> unit

/// The buffers of one solve (each 1 × length): the state and the next, a stage's input, the stages, f at the end of
/// a step (dense output), the error estimate and a dense output. Kept by the caller between solves of one shape.
type StageBuffers(dtype: torch.ScalarType, length: int, stages: int) =
    let make () = (use _ = torch.no_grad() in buffer dtype 1 length)
    let all = Array.init (stages + 6) (fun _ -> make ())
    do for b in all do b.Tensor.DetachFromDisposeScope() |> ignore
    member val Y = all[0] with get, set
    member val Y1 = all[1] with get, set
    member val F1 = all[2] with get, set
    member _.Stage = all[3]
    member _.Error = all[4]
    member _.Dense = all[5]
    /// The stages k_1 … k_s (Ks[0] = f at the state).
    member val Ks = all[6..] with get
    member _.Length = length
    member _.DType = dtype
    interface IDisposable with
        member _.Dispose() = for b in all do b.Tensor.Dispose()

/// One buffer kept by a workspace (Workspace.Scratch): a chunk's share of the parameters' gradients.
type ScratchBuffer(dtype: torch.ScalarType, rows: int, cols: int) =
    let b = (use _ = torch.no_grad() in buffer dtype rows cols)
    do b.Tensor.DetachFromDisposeScope() |> ignore
    member _.Buffer = b
    interface IDisposable with
        member _.Dispose() = b.Tensor.Dispose()

/// Copies `count` entries of a buffer into another of the same dtype (at offsets).
let copy (source: Buffer) (sourceOffset: int) (target: Buffer) (targetOffset: int) (count: int) =
    Array.Copy(source.Data, sourceOffset, target.Data, targetOffset, count)

/// The scaled RMS error of ErrorNorm.scaled over the first `count` entries: ‖err / (atol/rtol + max(|y0|, |y1|))‖₂ /
/// (rtol·√count); NaN propagates.
let private scaledError (rtol: float) (atol: float) (count: int) (err: Buffer) (y0: Buffer) (y1: Buffer) =
    if count = 0 then 0.0
    else
        let shift = atol / rtol
        let mutable acc = 0.0
        match err.Data, y0.Data, y1.Data with
        | (:? (float32[]) as e), (:? (float32[]) as a), (:? (float32[]) as b) ->
            let s = float32 shift
            for i in 0 .. count - 1 do
                let r = float (e[i] / (s + MathF.Max(abs a[i], abs b[i])))
                acc <- acc + r * r
        | e, a, b ->
            let e, a, b = e :?> float[], a :?> float[], b :?> float[]
            for i in 0 .. count - 1 do
                let r = e[i] / (shift + Math.Max(abs a[i], abs b[i]))
                acc <- acc + r * r
        sqrt acc / (rtol * sqrt (float count))

/// RMS of (x − z) / (|y0|·rtol + atol) over all entries (z: null for none): the first-step heuristic's norm.
let private rmsScaled (rtol: float) (atol: float) (x: Buffer) (z: Buffer option) (y0: Buffer) (count: int) =
    if count = 0 then 0.0
    else
        let mutable acc = 0.0
        for i in 0 .. count - 1 do
            let d = match z with Some z -> x[i] - z[i] | None -> x[i]
            let r = d / (abs y0[i] * rtol + atol)
            acc <- acc + r * r
        sqrt (acc / float count)

/// The first step size (positive), by InitialStep.select's heuristic; f(t0, y0) is in `b.Ks[0]`. One evaluation.
let private initialStep (kernels: IKernels) (system: IBufferSystem) (count: int ref) (b: StageBuffers) (t0: float) (direction: float) (order: int) (rtol: float) (atol: float) (span: float) =
    let n = system.Length
    let d0 = rmsScaled rtol atol b.Y None b.Y n
    let d1 = rmsScaled rtol atol b.Ks[0] None b.Y n
    let h0 = if d0 < 1e-5 || d1 < 1e-5 then 1e-6 else 0.01 * d0 / d1
    let h0 = min h0 span
    kernels.Combine(b.Y, [| direction * h0 |], [| b.Ks[0] |], b.Stage)
    count.Value <- count.Value + 1
    system.Evaluate(t0 + direction * h0, b.Stage, b.F1)
    let d2 = rmsScaled rtol atol b.F1 (Some b.Ks[0]) b.Y n / h0
    let h1 =
        if max d1 d2 <= 1e-15 then max 1e-6 (h0 * 1e-3)
        else (0.01 / max d1 d2) ** (1.0 / float (order + 1))
    min (min (100.0 * h0) h1) span

/// y at t + θh inside the step (t, y0) → (t + h, y1), into `out` (DenseOutputEval.evaluate on buffers).
let private dense (kernels: IKernels) (tableau: ButcherTableau) (y0: Buffer) (y1: Buffer) (h: float) (ks: Buffer[]) (f1: Buffer) (theta: float) (out: Buffer) =
    match tableau.Dense with
    | DenseOutput.Continuous weights ->
        let w = weights theta
        kernels.Combine(y0, w |> Array.map (fun w -> h * w), (if w.Length = ks.Length then ks else Array.append ks [| f1 |]), out)
    | DenseOutput.Hermite ->
        let t2, t3 = theta * theta, theta * theta * theta
        kernels.Scale(y0, 2.0 * t3 - 3.0 * t2 + 1.0, out)
        kernels.AddScaled(out, h * (t3 - 2.0 * t2 + theta), ks[0])
        kernels.AddScaled(out, -2.0 * t3 + 3.0 * t2, y1)
        kernels.AddScaled(out, h * (t3 - t2), f1)

/// Solves dy/dt = f(t, y) from the state in `b.Y` at times[0] over `times` (validated by the caller:
/// Integrate.validate), calling `output k y` with the state at each times[k], k ≥ 1 (a buffer valid during the call).
/// `normChannels` entries (from the first) enter the error norm. Raises the generic loop's OdeSolveExceptions.
let solve (kernels: IKernels) (system: IBufferSystem) (b: StageBuffers) (tableau: ButcherTableau) (control: StepControl)
          (times: float[]) (normChannels: int) (output: int -> Buffer -> unit) : SolveStatistics =
    let n = system.Length
    let t0, tEnd = times[0], times[times.Length - 1]
    let direction = if tEnd > t0 then 1.0 else -1.0
    let s = tableau.Stages
    let nfe = ref 0
    let evaluate t (y: Buffer) (dy: Buffer) =
        nfe.Value <- nfe.Value + 1
        system.Evaluate(t, y, dy)
    let allFinite (x: Buffer) = kernels.AllFinite x
    let needsEnd = DenseOutputEval.needsEndDerivative tableau
    let mutable t = t0
    let mutable next = 1
    let mutable accepted = 0
    let mutable rejected = 0
    let mutable previousError = 1.0
    let mutable lastErrorNonFinite = false
    let mutable fyValid = true
    let outputDueBy (t: float) = next < times.Length && (times[next] - t) * direction <= 0.0
    evaluate t0 b.Y b.Ks[0]
    let mutable h =
        firstStep control t0 tEnd (fun o ->
            initialStep kernels system nfe b t0 direction tableau.ErrorOrder o.RTol o.ATol (abs (tEnd - t0)))
    let maxSteps = stepBudget control
    while next < times.Length do
        Cancellation.check t
        checkStep t h tEnd accepted rejected maxSteps lastErrorNonFinite (fun () -> allFinite b.Y) (fun () -> not fyValid || allFinite b.Ks[0])
        let hStep, tNew, landsOnEnd = stepTo t h tEnd
        let ks = b.Ks
        // The stages (RungeKuttaStep.step): a FSAL tableau's last stage is evaluated at the solution itself.
        for i in 1 .. s - 1 do
            let target = if i = s - 1 && tableau.Fsal then b.Y1 else b.Stage
            kernels.Combine(b.Y, tableau.A[i] |> Array.map (fun a -> hStep * a), ks, target)
            evaluate (t + tableau.C[i] * hStep) target ks[i]
        if not tableau.Fsal then kernels.Combine(b.Y, tableau.B |> Array.map (fun w -> hStep * w), ks, b.Y1)
        let accept, error =
            match control, tableau.E with
            | StepControl.Adaptive o, Some e ->
                match Array.tryFindIndex (fun w -> w <> 0.0) e with
                | Some first ->
                    kernels.Scale(ks[first], hStep * e[first], b.Error)
                    for j in first + 1 .. e.Length - 1 do
                        if e[j] <> 0.0 then kernels.AddScaled(b.Error, hStep * e[j], ks[j])
                | None -> Array.Clear b.Error.Data   // no error weight: a zero estimate (TensorOps.weightedSum's zeros)
                let accept, error, nonFiniteNorm = judge t (scaledError o.RTol o.ATol (min normChannels n) b.Error b.Y b.Y1) (fun () -> allFinite ks[0])
                lastErrorNonFinite <- nonFiniteNorm
                accept, error
            | _ ->
                if not (allFinite b.Y1) then raise (nonFinite t $"The state became NaN or Inf in the step from t = {t} to {tNew}")
                true, 0.0
        if accept then
            // f at the new state: a FSAL tableau's last stage; otherwise evaluated when dense output needs it.
            let mutable endDerivative = if tableau.Fsal then Some ks[s - 1] else None
            while outputDueBy tNew do
                if times[next] = tNew || next = times.Length - 1 && landsOnEnd then output next b.Y1
                else
                    if endDerivative.IsNone && needsEnd then
                        evaluate tNew b.Y1 b.F1
                        endDerivative <- Some b.F1
                    dense kernels tableau b.Y b.Y1 hStep ks (defaultArg endDerivative b.F1) ((times[next] - t) / hStep) b.Dense
                    output next b.Dense
                next <- next + 1
            let y = b.Y
            b.Y <- b.Y1
            b.Y1 <- y
            match endDerivative with
            | Some f when obj.ReferenceEquals(f, b.F1) ->
                b.F1 <- ks[0]
                ks[0] <- f
                fyValid <- true
            | Some f ->
                ks[s - 1] <- ks[0]
                ks[0] <- f
                fyValid <- true
            | None -> fyValid <- false
            t <- tNew
            accepted <- accepted + 1
            if not fyValid && next < times.Length then
                evaluate t b.Y ks[0]
                fyValid <- true
        else
            rejected <- rejected + 1
        let nextH, remembered = nextStep control tableau t h hStep error previousError accept (next >= times.Length)
        h <- nextH
        previousError <- remembered
    { FunctionEvaluations = nfe.Value; AcceptedSteps = accepted; RejectedSteps = rejected }
