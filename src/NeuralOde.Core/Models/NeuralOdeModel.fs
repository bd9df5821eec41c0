namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A Neural ODE block (Chen et al. 2018; Massaroli et al. 2020, system (1) with h_x = identity): maps x to z(S),
/// the solution at the last of `times` of dz/ds = f_θ(z), z(times[0]) = x, where f_θ is a TorchSharp module.
/// Gradients flow to the module's parameters and to x by autograd through the solver.
type NeuralOdeModel(name: string, vectorField: Module<torch.Tensor, torch.Tensor>, solver: ButcherTableau,
                    control: StepControl, times: float[]) as this =
    inherit Module<torch.Tensor, torch.Tensor>(name)
    do
        StepControl.validate control
        Internal.Guard.timeGrid "times" times |> ignore
        this.register_module("vector_field", vectorField)
    let times = Array.copy times
    let mutable last = { FunctionEvaluations = 0; AcceptedSteps = 0; RejectedSteps = 0 }

    /// A block with the default name "neural_ode".
    new(vectorField, solver, control, times) = new NeuralOdeModel("neural_ode", vectorField, solver, control, times)

    /// The vector field module.
    member _.VectorField = vectorField
    /// The solver (Butcher tableau).
    member _.Solver = solver
    /// The step control.
    member _.Control = control
    /// The depth (time) grid; the block's output is the state at its last point.
    member _.Times = Array.copy times
    /// Statistics of the most recent forward solve.
    member _.LastStatistics = last

    /// Solves from x and returns the state at every time of `outputTimes`.
    member _.Trajectory(x: torch.Tensor, outputTimes: float[]) : OdeSolution =
        let solution = Ode.solve (OdeProblem.create (fun _ z -> vectorField.forward z) x outputTimes) solver control
        last <- solution.Statistics
        solution

    /// Solves from x and returns the state at every time of the block's grid.
    member m.Trajectory(x: torch.Tensor) : OdeSolution = m.Trajectory(x, times)

    /// z(S): the state at the last time of the grid.
    override m.forward(x: torch.Tensor) =
        use solution = m.Trajectory(x)
        solution.Final
