/// The adjoint sweep's tensor backend: any vector field (autograd, or closed-form products when the problem has them),
/// a running loss, gradients for the output times. States: x shaped like x0; the costate [a; μ] and the augmented
/// state [x; a; μ] flat (Internal/FlatState.fs).
module internal NeuralOde.Core.TensorAdjoint

open System
open TorchSharp
open NeuralOde.Core.Internal
open NeuralOde.Core.State
open NeuralOde.Core.AdjointSweep

type Tensor = torch.Tensor

/// A tensor adjoint solve: the problem's parts and the plan.
type Config =
    { Field: VectorField
      Vjp: VectorJacobianProduct option
      Loss: IntegralLoss option
      Shape: int64[]
      DType: torch.ScalarType
      Parameters: Tensor[]
      Plan: Plan }

type private Backend(cfg: Config) =
    let state = new TensorAlgebra()
    let costate = new TensorAlgebra()
    let augmented = new TensorAlgebra()
    let n = FlatState.numel cfg.Shape
    let parameterShapes = cfg.Parameters |> Array.map (fun p -> p.shape)
    let layout = Array.append [| cfg.Shape; cfg.Shape |] parameterShapes
    // What the field returns may be a tensor it does not own (a captured one): the sweep gets a wrapper of its own.
    let field t (x: Tensor) = (cfg.Field t x).alias()
    interface IAdjointBackend<Tensor> with
        member _.State = state
        member _.Costate = costate
        member _.Augmented = augmented
        member _.StateLength = int n
        member _.DType = cfg.DType
        member _.Field(t, x) = OdeSolveException.Calling(t, fun () -> field t x)
        member _.AugmentedField(weight, t, y) =
            let parts = FlatState.unpack y layout
            let dx, da, dTheta = AdjointSystem.derivatives cfg.Field cfg.Vjp cfg.Loss weight cfg.Parameters t parts[0] parts[1]
            FlatState.pack y.dtype (Array.append [| dx; da |] dTheta)
        member _.LossAt(weight, t, x) =
            match cfg.Loss with
            | Some l when weight <> 0.0 -> (use _ = torch.NewDisposeScope() in weight * (l t x).ToDouble())
            | _ -> 0.0
        member _.Join(x, c) = FlatState.pack c.dtype [| x; c |]
        member _.CostateOf y = (use part = y.narrow(0L, n, y.shape[0] - n) in part.clone())
        member _.StartCostate g =
            let zeros = parameterShapes |> Array.map (fun s -> torch.zeros(s, dtype = g.dtype, device = g.device))
            try FlatState.pack g.dtype (Array.append [| g |] zeros) finally for z in zeros do z.Dispose()
        member _.AdjointOf c = (use part = c.narrow(0L, 0L, n) in use shaped = part.view(cfg.Shape) in shaped.clone())
        member _.AddToAdjoint(c, g) =
            use part = c.narrow(0L, 0L, n)
            use flat = g.reshape(-1L)
            part.add_(flat, TensorOps.oneScalar) |> ignore
        member _.ImplicitStep(system, tableau, control, stateAt) =
            // J of the forward field at a forward state x, under the backward tableau's Newton options (its structure,
            // a Jacobian of the user's): the adjoint systems' Newton matrices are built from it.
            let jacobianAt t (x: Tensor) =
                let blocks, size = Implicit.Jacobian.blocks tableau.Newton.Structure x
                Implicit.Jacobian.evaluate tableau.Newton field t x blocks size
            let stepper =
                match system with
                | SweepSystem.State -> Implicit.ImplicitStep.create tableau control None
                | SweepSystem.Costate ->
                    let matrix = Implicit.NewtonMatrix.ofCostate (fun t _ -> (use x = stateAt t in jacobianAt t x)) n
                    Implicit.ImplicitStep.createWith matrix tableau control None
                | SweepSystem.Augmented ->
                    let matrix = Implicit.NewtonMatrix.ofAugmented (fun t y -> (use x = (y.narrow(0L, 0L, n)).view(cfg.Shape) in jacobianAt t x)) n
                    Implicit.ImplicitStep.createWith matrix tableau control None
            stepper.Step, stepper.Resources
    interface IDisposable with
        member _.Dispose() =
            (state :> IDisposable).Dispose()
            (costate :> IDisposable).Dispose()
            (augmented :> IDisposable).Dispose()

/// The tensor adjoint solve: the forward pass on the checkpoint grid by the tensor front (Integrate.solve, with the
/// running loss integrated alongside), the backward pass by the sweep.
type Run(cfg: Config) =
    let mutable forwardStatistics = SolveStatistics.Zero
    interface IAdjointRun with
        member _.ForwardStatistics = forwardStatistics
        member _.Forward(x0) =
            let plan = cfg.Plan
            let solver, control = plan.Forward
            let solution =
                match cfg.Loss with
                | None -> Integrate.solve (OdeProblem.create cfg.Field x0 plan.Grid) solver control
                | Some l ->
                    use y0 = RunningLoss.initial x0
                    Integrate.solve (OdeProblem.create (RunningLoss.augmentedField cfg.Field l cfg.Shape) y0 plan.Grid) solver control
            forwardStatistics <- solution.Statistics
            let gridStates, integral =
                match cfg.Loss with
                | None -> solution.States, torch.zeros([||], dtype = x0.dtype, device = x0.device)
                | Some _ ->
                    let xs, q = RunningLoss.split cfg.Shape solution.States
                    solution.States.Dispose()
                    xs, q
            use index = torch.tensor(plan.OutputIndex |> Array.map int64, device = x0.device)
            gridStates.index_select(0L, index), integral, gridStates
        member _.Backward(gridStates, gStates, weight) =
            use backend = new Backend(cfg)
            let b = backend :> IAdjointBackend<Tensor>
            let costate, gTimes = backward b cfg.Plan (fun m -> gridStates[int64 m]) (fun k -> gStates[int64 k]) weight
            use costate = costate
            use a = b.AdjointOf costate
            use g0 = gStates[0L]
            let gx0 = TensorOps.plus a g0
            let n = FlatState.numel cfg.Shape
            use mu = costate.narrow(0L, n, costate.shape[0] - n)
            let parts = FlatState.unpack mu (cfg.Parameters |> Array.map (fun p -> p.shape))
            // Each gradient in its parameter's dtype and on its device (a conversion that changes nothing still makes
            // a new wrapper: the view is freed here).
            let gParams = Array.map2 (fun (g: Tensor) (p: Tensor) -> (use g = g in g.``to``(p.dtype, p.device))) parts cfg.Parameters
            gx0, gTimes, gParams
