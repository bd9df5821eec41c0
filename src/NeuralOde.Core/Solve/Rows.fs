/// Per-row status of a batched solve (diffrax under vmap, SciML's ensembles): a batch shares one step size, so one
/// exploding or stiff row stops every row. `trySolve` attributes a failure to its rows (RowDiagnosis), marks them
/// failed with the failure and its time, drops them and solves the rest again from the start — so every row that
/// succeeds has exactly the result of a solve of the succeeding rows alone — until a solve succeeds or no rows are
/// left. Gradients by autograd.
module NeuralOde.Core.Rows

open System
open TorchSharp
open NeuralOde

/// How one row of a batched solve ended.
[<RequireQualifiedAccess>]
type RowStatus =
    /// Solved to the last output time.
    | Solved
    /// Stopped at `time` for `failure`: its states after that time are NaN.
    | Failed of failure: OdeFailure * time: float

/// The solution of every row of a batch. Owns `States`: dispose it.
type RowsSolution =
    { /// The requested output times.
      Times: float[]
      /// [Times.Length; N; ...]: every row's states; a failed row's states at the output times it did not reach are NaN.
      States: torch.Tensor
      /// Each row's status, in the batch's order.
      Rows: RowStatus[]
      /// The solves it took: one, plus one for each round of dropped rows.
      Solves: int
      /// The counts of every solve, added up.
      Statistics: SolveStatistics }
    /// True when every row was solved.
    member s.Succeeded = s.Rows |> Array.forall (fun r -> r = RowStatus.Solved)
    /// The rows that failed, in order.
    member s.FailedRows = s.Rows |> Array.indexed |> Array.choose (fun (i, r) -> if r = RowStatus.Solved then None else Some i)
    interface IDisposable with
        member s.Dispose() = s.States.Dispose()

/// A tensor of `shape` full of NaN, with `like`'s dtype and device (the Scalar held until the call returns: see the
/// docs/troubleshooting.md on TorchSharp's temporary Scalars).
let private nans (shape: int64[]) (like: torch.Tensor) =
    use value = Scalar.op_Implicit nan
    torch.full(shape, value, dtype = like.dtype, device = like.device)

/// `problem` on the rows `rows` of its batch (x0's first dimension).
let private subset (problem: OdeProblem) (rows: int64[]) =
    use index = torch.tensor(rows, device = problem.X0.device)
    { problem with X0 = problem.X0.index_select(0L, index) }

/// Solves the batch of `count` rows that `build` makes a problem of (given the rows, indices along the first
/// dimension, in order) row by row as the module's comment says. A 0-dim state is one row.
let trySolveWith (build: int64[] -> OdeProblem) (count: int) (solver: ButcherTableau) (control: StepControl) : RowsSolution =
    if count < 1 then raise (ArgumentOutOfRangeException("x0", count, "A batch to solve by rows needs at least one row."))
    let status = Array.create count RowStatus.Solved
    let pieces = ResizeArray<int64[] * torch.Tensor>()
    let mutable remaining = Array.init count int64
    let mutable solves = 0
    let mutable statistics = SolveStatistics.Zero
    let mutable times = [||]
    // A 0-dim state is one row: its states [T] are handled as [T, 1].
    let mutable scalar = false
    try
        while remaining.Length > 0 do
            let problem = build remaining
            if problem.IntegralLoss.IsSome then
                raise (ArgumentException("A solve by rows takes no running loss: its integral sums over the rows. Solve without it, or with Ode.trySolve.", "integralLoss"))
            times <- problem.Times
            scalar <- problem.X0.dim() = 0L
            let solution = Ode.trySolve problem solver control
            solves <- solves + 1
            statistics <-
                { FunctionEvaluations = statistics.FunctionEvaluations + solution.Statistics.FunctionEvaluations
                  AcceptedSteps = statistics.AcceptedSteps + solution.Statistics.AcceptedSteps
                  RejectedSteps = statistics.RejectedSteps + solution.Statistics.RejectedSteps
                  Backend = solution.Statistics.Backend
                  Switches = Array.append statistics.Switches solution.Statistics.Switches }
            match solution.Status with
            | SolveStatus.Succeeded ->
                pieces.Add(remaining, (if scalar then (let s = solution.States.unsqueeze(1L) in solution.States.Dispose(); s) else solution.States))
                remaining <- [||]
            | SolveStatus.Failed(failure, time, _) ->
                // Rows the failure is attributed to; where none can be singled out, every remaining row failed.
                let culprits = if solution.FailedRows.Length > 0 then solution.FailedRows else Array.init remaining.Length id
                for c in culprits do status[int remaining[c]] <- RowStatus.Failed(failure, time)
                let rows = culprits |> Array.map (fun c -> remaining[c])
                if scalar then pieces.Add(rows, (let s = solution.States.unsqueeze(1L) in solution.States.Dispose(); s))
                else
                    use index = torch.tensor(culprits |> Array.map int64, device = solution.States.device)
                    pieces.Add(rows, solution.States.index_select(1L, index))
                    solution.States.Dispose()
                remaining <- remaining |> Array.filter (fun r -> not (Array.contains r rows))
        // Every piece into its rows of one tensor, NaN where a failed row has no output.
        let like = snd pieces[0]
        let shape = Array.concat [ [| int64 times.Length; int64 count |]; like.shape[2..] ]
        let mutable full = nans shape like
        for rows, states in pieces do
            use _ = torch.NewDisposeScope()
            let reached = states.shape[0]
            let padded =
                if reached = int64 times.Length then states
                else
                    let rest = Array.append [| int64 times.Length - reached |] states.shape[1..]
                    use fill = nans rest states
                    torch.cat([| states; fill |], 0L)
            use index = torch.tensor(rows, device = like.device)
            let next = full.index_copy(1L, index, padded).MoveToOuterDisposeScope()
            full.Dispose()
            full <- next
        let states = if scalar then (let s = full.squeeze(1L) in full.Dispose(); s) else full
        { Times = Array.copy times; States = states; Rows = status; Solves = solves; Statistics = statistics }
    finally
        for _, states in pieces do states.Dispose()

/// `trySolveWith` on the rows of `problem`'s x0 (its first dimension; a 0-dim x0 is one row), by autograd.
let trySolve (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : RowsSolution =
    let x0 = problem.X0
    if x0.dim() = 0L then trySolveWith (fun _ -> problem) 1 solver control
    else
        let count = int x0.shape[0]
        trySolveWith (fun rows -> if rows.Length = count then problem else subset problem rows) count solver control
