namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A Neural ODE block (Chen et al. 2018; Massaroli et al. 2020, system (1) with h_x = identity): maps x to z(S),
/// the solution at the last of `times` of dz/ds = f_θ(z), z(times[0]) = x, where f_θ is a TorchSharp module.
/// Gradients flow to the module's parameters and to x by the chosen sensitivity (autograd through the solver by
/// default; an adjoint method computes them for the module's parameters).
type NeuralOdeModel(name: string, vectorField: Module<torch.Tensor, torch.Tensor>, solver: ButcherTableau,
                    control: StepControl, sensitivity: Sensitivity, times: float[]) as this =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    do
        StepControl.validate control
        Internal.Guard.timeGrid "times" times |> ignore
        this.register_module("vector_field", vectorField)
    let times = Array.copy times
    let mutable last = { FunctionEvaluations = 0; AcceptedSteps = 0; RejectedSteps = 0 }
    let mutable lastBackward = BackwardStatistics()

    /// A block with the default name "neural_ode" and gradients by autograd through the solver.
    new(vectorField, solver, control, times) =
        new NeuralOdeModel("neural_ode", vectorField, solver, control, Sensitivity.Autograd, times)

    /// A block with the default name "neural_ode".
    new(vectorField, solver, control, sensitivity, times) =
        new NeuralOdeModel("neural_ode", vectorField, solver, control, sensitivity, times)

    /// The vector field module.
    member _.VectorField = vectorField
    /// The solver (Butcher tableau).
    member _.Solver = solver
    /// The step control.
    member _.Control = control
    /// How gradients are computed.
    member _.Sensitivity = sensitivity
    /// The depth (time) grid; the block's output is the state at its last point.
    member _.Times = Array.copy times
    /// Statistics of the most recent forward solve.
    member _.LastStatistics = last
    /// Statistics of the backward solve of the most recent forward solve, once backward() has run through it
    /// (adjoint sensitivities only; zero for autograd).
    member _.LastBackwardStatistics = lastBackward

    /// Solves from x and returns the state at every time of `outputTimes`.
    member _.Trajectory(x: torch.Tensor, outputTimes: float[]) : OdeSolution =
        let problem =
            OdeProblem.create (fun _ z -> vectorField.forward z) x outputTimes
            |> OdeProblem.withParameters (vectorField.parameters() |> Seq.map (fun p -> p :> torch.Tensor))
        let solution = Ode.solveWith sensitivity problem solver control
        last <- solution.Statistics
        lastBackward <- solution.Backward
        solution

    /// Solves from x and returns the state at every time of the block's grid.
    member m.Trajectory(x: torch.Tensor) : OdeSolution = m.Trajectory(x, times)

    /// z(S): the state at the last time of the grid.
    override m.forward(x: torch.Tensor) =
        use solution = m.Trajectory(x)
        solution.Final
