/// Stacked solves: p Neural ODEs in sequence, each on its own interval of a partition (Massaroli et al. 2020, the
/// stacked forward formula), so that no step straddles a jump of θ.
module NeuralOde.Core.Stacked

open TorchSharp

/// The states at the partition points, stacked [p + 1; ...x0.shape], with gradients by `sensitivity`
/// (`parameters` are the tensors the fields use, for adjoint methods).
let solve (fieldFor: int -> VectorField) (partition: float[]) (x0: torch.Tensor) (parameters: seq<torch.Tensor>)
          (sensitivity: Sensitivity) (solver: ButcherTableau) (control: StepControl) : torch.Tensor =
    Internal.Guard.timeGrid "partition" partition |> ignore
    let parameters = Array.ofSeq parameters
    let states = ResizeArray<torch.Tensor>([ x0 ])
    for i in 0 .. partition.Length - 2 do
        let problem = OdeProblem.create (fieldFor i) states[i] [| partition[i]; partition[i + 1] |] |> OdeProblem.withParameters parameters
        use solution = Ode.solveWith sensitivity problem solver control
        states.Add(solution.Final)
    let result = torch.stack(states.ToArray(), 0L)
    for i in 1 .. states.Count - 1 do states[i].Dispose()
    result
