/// The discrete adjoint of fixed steps (Sensitivity.Autograd on a compiled field backend): what autograd through the
/// solver computes, as one custom autograd function. The forward pass is the one integration loop on host buffers with
/// a taped compiled system (every evaluation's intermediates kept under its slot); the backward pass walks the steps
/// in reverse: for step y' = y + h Σ b_i k_i, k_i = f(y + h Σ_j a_ij k_j),
///   k̄_i = h b_i ȳ' + Σ_{j>i} h a_ji ū_j,   ū_i = (∂f/∂u)ᵀ k̄_i (and the parameters' share),   ȳ = ȳ' + Σ_i ū_i.
/// Each output's cotangent enters where the output was read: a step's end (ȳ there), or inside a step by dense output
/// (a combination of the step's start, end, stages and f at its end, each getting its share). For a FSAL tableau the
/// first stage of a step is the previous step's last (the same slot), and its cotangent is carried back to it.
module internal NeuralOde.Core.DiscreteAdjoint

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.State
open NeuralOde.Core.State.Buffers

type Tensor = torch.Tensor

/// A discrete-adjoint solve.
type Config =
    { Backend: ICompilingBackend
      Threads: int
      /// The problem: its field on tensors replays the solve when the backward pass is itself differentiated.
      Problem: OdeProblem
      Tableau: ButcherTableau
      Control: StepControl
      /// The tensors handed to TorchSharp (freed by the caller of `apply`).
      Handed: List<Tensor>
      mutable Statistics: SolveStatistics }

/// Where an output was read: at the boundary between steps b − 1 and b (y_b), or inside step n at θ.
type private Place =
    | Boundary of int
    | Inside of step: int * theta: float

/// A step as the forward pass kept it: its start, size, the slots of its stages and of f at its end (−1: none).
type private Taped = { T: float; H: float; Slots: int[]; EndSlot: int }

/// What the forward pass leaves for the backward pass.
type private Tape =
    { System: ITapedSystem
      Steps: Taped[]
      SlotTimes: float[]
      Places: Place[]
      /// Set when a backward pass has given the system back: a second pass (retain_graph) runs only while no other
      /// solve has taken its buffers.
      mutable GivenBack: bool }

/// One chunk's forward pass (the whole batch when it is one chunk): its states at the output times [T; x0.shape].
let private forward (cfg: Config) (x0: Tensor) : Tensor * Tape =
    // Grad mode is per thread: a chunk's worker thread has it on.
    use _ = torch.no_grad()
    let times = cfg.Problem.Times
    let n = int (x0.numel())
    let system = cfg.Backend.Compile(x0, 1, true) :?> ITapedSystem
    let algebra = cfg.Backend.Algebras.Rent(x0.dtype, n)
    try
        try
            let s = algebra :> IStateAlgebra<Buffer>
            let slotOf = Dictionary<Buffer, int>(HashIdentity.Reference)
            let slotTimes = List<float>()
            let field t (y: Buffer) =
                let dy = algebra.Rent()
                let slot = slotTimes.Count
                system.EvaluateTaped(slot, t, y, dy)
                slotTimes.Add t
                slotOf[dy] <- slot
                dy
            let steps = List<Taped>()
            let places = Array.create times.Length (Boundary 0)
            let pending = List<int>()
            let outputs = torch.empty([| int64 times.Length; int64 n |], dtype = x0.dtype)
            let observe (step: Loop.AcceptedStep<Buffer>) =
                let index = steps.Count
                // The loop reads an output at the step's end when it falls there (the last always does), else by dense output.
                for k in pending do
                    places[k] <-
                        if k = times.Length - 1 || times[k] = step.T + step.H then Boundary(index + 1)
                        else Inside(index, (times[k] - step.T) / step.H)
                pending.Clear()
                steps.Add { T = step.T; H = step.H; Slots = step.Ks |> Array.map (fun k -> slotOf[k])
                            EndSlot = if isNull (box step.F1) then -1 else slotOf[step.F1] }
            let settings = { Loop.plain with Observer = Some observe }
            let x = algebra.FromTensor x0
            try
                (use row = outputs[0L] in use flat = x0.reshape(-1L) in row.copy_(flat) |> ignore)
                let outcome =
                    Loop.run s field x times cfg.Tableau cfg.Control settings (fun k y ->
                        use row = outputs[int64 k]
                        use flat = y.Tensor.reshape(-1L)
                        row.copy_(flat) |> ignore
                        pending.Add k)
                cfg.Statistics <- { outcome.Statistics with Backend = cfg.Backend.Name }
            finally s.Release x
            let shaped = (use o = outputs in o.reshape(Array.append [| int64 times.Length |] x0.shape))
            shaped, { System = system; Steps = steps.ToArray(); SlotTimes = slotTimes.ToArray(); Places = places; GivenBack = false }
        finally cfg.Backend.Algebras.Return algebra
    with _ ->
        (system :> IDisposable).Dispose()
        reraise ()

/// One chunk's backward pass from its outputs' cotangents [T; shape]: its x0's gradient and the parameters'.
let private backward (cfg: Config) (tape: Tape) (gStates: Tensor) (shape: int64[]) : Tensor * Tensor[] =
    use _ = torch.no_grad()
    let tableau = cfg.Tableau
    let s = tableau.Stages
    let pool = cfg.Backend.Algebras.Rent(gStates.dtype, int (gStates.numel() / gStates.shape[0]))
    let algebra = pool :> IStateAlgebra<Buffer>
    let system = tape.System
    let made = List<Buffer>()
    let fresh () =
        let b = pool.Rent()
        made.Add b
        b
    let scaled (c: float) (g: Buffer) =
        let b = fresh ()
        scaleInto g c b
        b
    let add (table: Dictionary<int, Buffer>) (key: int) (c: float) (g: Buffer) =
        if c <> 0.0 then
            match table.TryGetValue key with
            | true, acc -> addScaled acc c g
            | _ -> table[key] <- scaled c g
    try
        let boundary = Dictionary<int, Buffer>()
        let slotCotangent = Dictionary<int, Buffer>()
        // Each output's cotangent where it was read.
        for k in 0 .. cfg.Problem.Times.Length - 1 do
            let g = fresh ()
            (use gk = gStates[int64 k] in use flat = gk.reshape(1L, -1L) in g.Tensor.copy_(flat) |> ignore)
            match (if k = 0 then Boundary 0 else tape.Places[k]) with
            | Boundary b -> add boundary b 1.0 g
            | Inside(i, theta) ->
                let step = tape.Steps[i]
                let h = step.H
                match tableau.Dense with
                | DenseOutput.Continuous weights ->
                    let w = weights theta
                    add boundary i 1.0 g
                    for j in 0 .. w.Length - 1 do
                        add slotCotangent (if j < s then step.Slots[j] else step.EndSlot) (h * w[j]) g
                | DenseOutput.Hermite ->
                    let t2, t3 = theta * theta, theta * theta * theta
                    add boundary i (2.0 * t3 - 3.0 * t2 + 1.0) g
                    add slotCotangent step.Slots[0] (h * (t3 - 2.0 * t2 + theta)) g
                    add boundary (i + 1) (-2.0 * t3 + 3.0 * t2) g
                    add slotCotangent step.EndSlot (h * (t3 - t2)) g
        let steps = tape.Steps
        let last = steps.Length
        let yBar = match boundary.TryGetValue last with | true, b -> b | _ -> (let z = fresh () in Array.Clear z.Data; z)
        let uBar = fresh ()
        system.ClearGradients()
        // f at the end of the last step (read by dense output only) is a stage of no step: its share goes to ȳ there.
        let stageSlots = HashSet<int>(steps |> Seq.collect (fun st -> st.Slots))
        for KeyValue(slot, g) in Array.ofSeq slotCotangent do
            if not (stageSlots.Contains slot) then
                system.ProductsAt(slot, tape.SlotTimes[slot], g, uBar)
                addScaled yBar 1.0 uBar
                slotCotangent.Remove slot |> ignore
        let kBar = Array.zeroCreate<Buffer> s
        for i in 0 .. s - 1 do kBar[i] <- fresh ()
        let touched = Array.zeroCreate<bool> s
        for n in last - 1 .. -1 .. 0 do
            let st = steps[n]
            let t, h = st.T, st.H
            // The backward pass stops at its next step too.
            Cancellation.check t
            for i in 0 .. s - 1 do
                let c = h * tableau.B[i]
                touched[i] <- c <> 0.0
                if touched[i] then scaleInto yBar c kBar[i]
                match slotCotangent.TryGetValue st.Slots[i] with
                | true, g when not (tableau.Fsal && i = 0 && n > 0) ->
                    if touched[i] then addScaled kBar[i] 1.0 g else copy g 0 kBar[i] 0 g.Length
                    touched[i] <- true
                    slotCotangent.Remove st.Slots[i] |> ignore
                | _ -> ()
            for i in s - 1 .. -1 .. 0 do
                if touched[i] then
                    if tableau.Fsal && i = 0 && n > 0 then
                        // The previous step's last stage: its cotangent is completed there.
                        add slotCotangent st.Slots[0] 1.0 kBar[0]
                    else
                        system.ProductsAt(st.Slots[i], t + tableau.C[i] * h, kBar[i], uBar)
                        addScaled yBar 1.0 uBar
                        for j in 0 .. i - 1 do
                            let a = tableau.A[i][j]
                            if a <> 0.0 then
                                if touched[j] then addScaled kBar[j] (h * a) uBar
                                else scaleInto uBar (h * a) kBar[j]
                                touched[j] <- true
            match boundary.TryGetValue n with
            | true, g -> addScaled yBar 1.0 g
            | _ -> ()
        let gx = (use flat = yBar.Tensor.reshape(shape) in flat.clone())
        let byParameter = Array.zip system.Parameters (system.ParameterGradients())
        let gParams =
            cfg.Problem.Parameters |> Array.map (fun p ->
                match byParameter |> Array.tryFind (fun (q, _) -> obj.ReferenceEquals(p, q)) with
                | Some(_, g) when not (isNull g) -> g
                | _ -> torch.zeros_like(p))
        // The system's parameters the problem does not list get no gradient: theirs are freed here.
        for q, g in byParameter do
            if not (isNull g) && not (cfg.Problem.Parameters |> Array.exists (fun p -> obj.ReferenceEquals(p, q))) then g.Dispose()
        gx, gParams
    finally
        for b in made do algebra.Release b
        cfg.Backend.Algebras.Return pool

/// The batch's chunks (first row, count) of rows of `features`, solved side by side, one thread each.
type private Split = { Features: int64; Chunks: (int * int)[]; Tapes: Tape[] }

/// The rows of x ([T; …] when `leading`) as the chunks' parts, views of x reshaped to (T ×) rows × features.
let private parts (split: Split) (x: Tensor) (leading: bool) =
    use rows = if leading then x.reshape(x.shape[0], -1L, split.Features) else x.reshape(-1L, split.Features)
    let axis = if leading then 1L else 0L
    split.Chunks |> Array.map (fun (r0, r) -> rows.narrow(axis, int64 r0, int64 r))

let private forwardSplit (cfg: Config) (x0: Tensor) : Tensor * Split =
    let features, chunks = cfg.Backend.RowChunks(x0, cfg.Threads)
    if chunks.Length = 1 then
        let states, tape = forward cfg x0
        states, { Features = features; Chunks = chunks; Tapes = [| tape |] }
    else
        let split = { Features = features; Chunks = chunks; Tapes = Array.zeroCreate chunks.Length }
        let xs = parts split x0 false
        let states = Array.zeroCreate<Tensor> chunks.Length
        try
            IntraOpThreads.inParallel chunks.Length (fun c ->
                let s, tape = forward cfg xs[c]
                states[c] <- s
                split.Tapes[c] <- tape)
            use joined = torch.cat(states, 1L)
            joined.reshape(Array.append [| int64 cfg.Problem.Times.Length |] x0.shape), split
        finally
            for t in Array.append xs states do if not (isNull t) then t.Dispose()

let private backwardSplit (cfg: Config) (split: Split) (gStates: Tensor) (shape: int64[]) : Tensor * Tensor[] =
    if split.Tapes.Length = 1 then backward cfg split.Tapes[0] gStates shape
    else
        let gs = parts split gStates true
        let results = Array.zeroCreate<Tensor * Tensor[]> gs.Length
        try
            IntraOpThreads.inParallel gs.Length (fun c ->
                let _, r = split.Chunks[c]
                results[c] <- backward cfg split.Tapes[c] gs[c] [| int64 r; split.Features |])
            let gx = (use joined = torch.cat(results |> Array.map fst, 0L) in joined.reshape(shape))
            let gParams = snd results[0]
            for c in 1 .. results.Length - 1 do
                Array.iter2 (fun (total: Tensor) (part: Tensor) -> Internal.TensorOps.addScaledInPlace total part 1.0 |> ignore) gParams (snd results[c])
            gx, gParams
        finally
            for g in gs do g.Dispose()
            for c in 0 .. results.Length - 1 do
                if not (isNull (box results[c])) then
                    let gx, gParams = results[c]
                    gx.Dispose()
                    if c > 0 then for g in gParams do g.Dispose()

/// The custom autograd function: inputs [| Config; x0; parameters… |], output [| the states at the output times |].
type DiscreteAdjointFunction() =
    inherit torch.autograd.MultiTensorFunction<DiscreteAdjointFunction>()

    override _.Name = "DiscreteAdjoint"

    override _.forward(ctx, vars) =
        let cfg = vars[0] :?> Config
        let x0 = vars[1] :?> Tensor
        let states, split = (use _ = torch.no_grad() in forwardSplit cfg x0)
        ctx.save_for_backward(List<Tensor>([ x0 ]))
        ctx.save_data("config", cfg)
        ctx.save_data("split", split)
        cfg.Handed.Add states
        List<Tensor>([ states ])

    override _.backward(ctx, grads) =
        // Runs as a callback from libtorch's engine, where a .NET exception cannot pass (see BackwardFailure).
        let cfg = ctx.get_data("config") :?> Config
        let split = ctx.get_data("split") :?> Split
        let parameters = cfg.Problem.Parameters
        try
            use g = grads[0]
            use x0 = ctx.get_saved_variables()[0]
            if torch.is_grad_enabled () then
                // create_graph: the gradients must themselves be differentiable, so the solve is replayed on tensors by
                // the loop (autograd records it) and differentiated with the graph kept.
                let inputs = Array.append (if x0.requires_grad then [| x0 |] else [||]) (parameters |> Array.filter (fun p -> p.requires_grad))
                let solution = Integrate.solve { cfg.Problem with X0 = x0; FieldBackend = None } cfg.Tableau cfg.Control
                let gs = Internal.SafeAutograd.grad [| solution.States |] inputs [| g |] true
                let mutable k = 0
                let next () =
                    let r = gs[k]
                    k <- k + 1
                    r
                let gx = if x0.requires_grad then next () else null
                let gParams = parameters |> Array.map (fun p -> if p.requires_grad then next () else null)
                List<Tensor>(Seq.concat [ [ null; gx ]; List.ofArray gParams ])
            else
                if split.Tapes |> Array.exists (fun tape -> tape.GivenBack && not tape.System.Valid) then
                    raise (InvalidOperationException("The discrete adjoint's tape was reused by a later solve of the same field, so this backward pass (of a graph kept with retain_graph) cannot run. Call backward before the next forward, or solve with FieldBackendChoice.Module."))
                let gx, gParams =
                    try (use _ = torch.no_grad() in backwardSplit cfg split g x0.shape)
                    finally
                        // Given back to the backend; its tape stays readable until another solve rents it.
                        for tape in split.Tapes do
                            tape.GivenBack <- true
                            (tape.System :> IDisposable).Dispose()
                cfg.Backend.Hand(Seq.append [ gx ] gParams)
                List<Tensor>(Seq.concat [ [ null; gx ]; List.ofArray gParams ])
        with e ->
            BackwardFailure.record e
            try
                let shapes = Array.append [| cfg.Problem.X0.shape |] (parameters |> Array.map (fun p -> p.shape))
                let dtype = cfg.Problem.X0.dtype
                List<Tensor>(Seq.append [ null ] (shapes |> Seq.map (fun s -> BackwardFailure.rejectedGradient s dtype torch.CPU)))
            with _ -> List<Tensor>(Array.create (2 + parameters.Length) (null: Tensor))

/// Solves by the discrete adjoint: the states at the output times, differentiable. The tape (the compiled system's
/// workspace) is given back to the backend by the backward pass.
let solve (cfg: Config) : Tensor =
    cfg.Backend.FreeHanded()
    let inputs: obj[] = Array.append [| box cfg; box cfg.Problem.X0 |] (cfg.Problem.Parameters |> Array.map box)
    try DiscreteAdjointFunction.apply(inputs)[0]
    finally
        for t in cfg.Handed do t.Dispose()
        cfg.Handed.Clear()
