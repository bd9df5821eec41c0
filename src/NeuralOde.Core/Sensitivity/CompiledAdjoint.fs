/// The adjoint sweep's host-buffer backend: a compiled field backend's system (Problem/FieldBackend.fs) evaluates f and
/// the augmented system [x; a; μ] ↦ [f; −aᵀ ∂f/∂x; −aᵀ ∂f/∂θ] on flat buffers, with no tensor per step. The forward pass
/// keeps the states at the checkpoint grid as host arrays; each pass rents its compiled system and buffer algebras from
/// the backend and gives them back, so a forward pass whose backward pass never comes keeps nothing but those arrays.
module internal NeuralOde.Core.CompiledAdjoint

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.State
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.AdjointSweep

type Tensor = torch.Tensor

/// A compiled adjoint solve.
type Config =
    { Backend: ICompilingBackend
      /// Threads the compiled system's row chunks run on.
      Threads: int
      /// x0's shape and its entries.
      Shape: int64[]
      Length: int
      DType: torch.ScalarType
      /// The problem's parameters, in the order the gradients are returned (the compiled system's may differ).
      Parameters: Tensor[]
      Plan: Plan }

type private Backend(system: ICompiledSystem, state: BufferAlgebra, costate: BufferAlgebra, augmented: BufferAlgebra) =
    let n = system.Length
    let p = system.ParameterLength
    interface IAdjointBackend<Buffer> with
        member _.State = state
        member _.Costate = costate
        member _.Augmented = augmented
        member _.StateLength = n
        member _.DType = state.DType
        member _.Field(t, x) =
            let dy = state.Rent()
            system.Evaluate(t, x, dy)
            dy
        member _.AugmentedField(_, t, y) =
            let dy = augmented.Rent()
            system.EvaluateAdjoint(t, y, dy)
            dy
        member _.LossAt(_, _, _) = 0.0
        member _.Join(x, c) =
            let y = augmented.Rent()
            copy x 0 y 0 n
            copy c 0 y n (n + p)
            y
        member _.CostateOf y =
            let c = costate.Rent()
            copy y n c 0 (n + p)
            c
        member _.StartCostate g =
            let c = costate.Rent()
            copy g 0 c 0 n
            Array.Clear(c.Data, n, p)
            c
        member _.AdjointOf c =
            let a = state.Rent()
            copy c 0 a 0 n
            a
        member _.AddToAdjoint(c, g) = addScaledPrefix c 1.0 g n
        // The dispatch (Solve/Ode.fs) runs implicit solvers, forward or backward, on tensors.
        member _.ImplicitStep(_, tableau, _, _) =
            invalidOp $"The implicit solver {tableau.Name} runs on tensors: a compiled backend's adjoint cannot take it."

/// The compiled adjoint solve (Sensitivity.Adjoint or InterpolatedAdjoint on a compiled backend).
type Run(cfg: Config) =
    let plan = cfg.Plan
    let checkpoints = Array.zeroCreate<Array> plan.Grid.Length
    let mutable forwardStatistics = SolveStatistics.Zero
    let pool = cfg.Backend.Algebras
    /// Runs `work` with the compiled system and the algebras of [x], [a; μ] and [x; a; μ], given back after.
    let withSystem (work: ICompiledSystem -> BufferAlgebra -> BufferAlgebra -> BufferAlgebra -> 'a) (x0: Tensor) =
        use system = cfg.Backend.Compile(x0, cfg.Threads, false)
        let n, p = system.Length, system.ParameterLength
        let state = pool.Rent(cfg.DType, n)
        let costate = pool.Rent(cfg.DType, n + p)
        let augmented = pool.Rent(cfg.DType, 2 * n + p)
        try work system state costate augmented
        finally
            pool.Return state
            pool.Return costate
            pool.Return augmented
    interface IAdjointRun with
        member _.ForwardStatistics = forwardStatistics
        member _.Forward(x0) =
            // The wrappers of this thread's last backward pass's gradients, which libtorch has taken by now.
            cfg.Backend.FreeHanded()
            use _ = torch.no_grad()
            x0 |> withSystem (fun system state _ _ ->
                let n = cfg.Length
                let tableau, control = plan.Forward
                let x = state.FromTensor x0
                checkpoints[0] <- snapshot x n
                let outcome =
                    try
                        Loop.run state (fun t y -> let dy = state.Rent() in system.Evaluate(t, y, dy); dy) x plan.Grid tableau control Loop.plain
                            (fun k y -> checkpoints[k] <- snapshot y n)
                    finally (state :> IStateAlgebra<Buffer>).Release x
                forwardStatistics <- { outcome.Statistics with Backend = cfg.Backend.Name }
                let outputs = torch.empty([| int64 plan.Times.Length; int64 n |], dtype = cfg.DType)
                for k in 0 .. plan.Times.Length - 1 do
                    use row = outputs[int64 k]
                    use host = (match checkpoints[plan.OutputIndex[k]] with
                                | :? (float32[]) as a -> torch.tensor(a)
                                | a -> torch.tensor(a :?> float[]))
                    row.copy_(host) |> ignore
                let shaped = (use o = outputs in o.reshape(Array.append [| int64 plan.Times.Length |] cfg.Shape))
                shaped, torch.zeros([||], dtype = cfg.DType), null)
        member _.Backward(_, gStates, _) =
            use _ = torch.no_grad()
            // The weights are read again (an optimiser steps only after the backward pass).
            use x0 = torch.zeros(cfg.Shape, dtype = cfg.DType)
            x0 |> withSystem (fun system state costate augmented ->
                let b = Backend(system, state, costate, augmented) :> IAdjointBackend<Buffer>
                let s = state :> IStateAlgebra<Buffer>
                let lent = List<Buffer>()
                let lend (make: unit -> Buffer) =
                    let x = make ()
                    lent.Add x
                    x
                let loaded = Dictionary<int, Buffer>()
                let checkpoint m =
                    match loaded.TryGetValue m with
                    | true, x -> x
                    | _ ->
                        let x = lend (fun () -> state.Rent())
                        Array.Copy(checkpoints[m], x.Data, cfg.Length)
                        loaded[m] <- x
                        x
                let gOutput k = lend (fun () -> (use g = gStates[int64 k] in state.FromTensor g))
                try
                    let final, gTimes = backward b plan checkpoint gOutput 0.0
                    let c = costate :> IStateAlgebra<Buffer>
                    try
                        use g0 = gStates[0L]
                        use a = (use part = final.Tensor.narrow(1L, 0L, int64 cfg.Length) in part.reshape(cfg.Shape))
                        let gx0 = Internal.TensorOps.plus a g0
                        // μ in the compiled system's parameter order, handed out in the problem's.
                        let mutable offset = cfg.Length
                        let byParameter =
                            system.Parameters |> Array.map (fun p ->
                                let count = p.numel()
                                use part = final.Tensor.narrow(1L, int64 offset, count)
                                offset <- offset + int count
                                use shaped = part.reshape(p.shape)
                                p, shaped.``to``(p.dtype, p.device, copy = true))
                        let gParams =
                            cfg.Parameters |> Array.map (fun p ->
                                match byParameter |> Array.tryFind (fun (q, _) -> obj.ReferenceEquals(p, q)) with
                                | Some(_, g) -> g
                                | None -> torch.zeros_like(p))
                        // The system's parameters the problem does not list get no gradient: theirs are freed here.
                        for q, g in byParameter do
                            if not (cfg.Parameters |> Array.exists (fun p -> obj.ReferenceEquals(p, q))) then g.Dispose()
                        cfg.Backend.Hand(Seq.append [ gx0 ] gParams)
                        gx0, gTimes, gParams
                    finally c.Release final
                finally
                    for x in lent do s.Release x)
