namespace NeuralOde.Core

open TorchSharp

/// How the Jacobian ∂f/∂y of an implicit solver's Newton iteration is laid out.
[<RequireQualifiedAccess>]
type JacobianStructure =
    /// One dense n × n matrix over the whole flattened state (n entries). For small states, or any field whose
    /// entries interact across rows.
    | Dense
    /// The state is a batch [N, …] whose rows do not interact: f's row r depends on the state's row r only (a
    /// batched vector field: every sample solved at once). The Jacobian is then N blocks d × d (d = the entries of
    /// one row), found by d vector–Jacobian products instead of N·d, and the linear solves are batched. Declared by
    /// the caller, not detected: a field that mixes rows (a batch norm, attention across samples, a sum over the
    /// batch) must not be given blocks — the Newton iteration would then use a wrong matrix, converge slowly or not
    /// at all, and fail with NewtonDivergence.
    | RowBlocks

/// Options of the simplified Newton iteration that solves an implicit solver's stages (Hairer & Wanner, "Solving
/// ODEs II", §IV.8): z ← z − (I − hγJ)⁻¹ (z − base − hγ f(t, z)), with J kept across stages and steps.
type NewtonOptions =
    { /// The layout of J (dense, or per-row blocks for a batch of independent rows).
      Structure: JacobianStructure
      /// A Jacobian of your own, (t, y) ↦ ∂f/∂y: for Dense a tensor [n, n] (n = y.numel()), for RowBlocks [N, d, d];
      /// None: by autograd (d vector–Jacobian products for blocks, n for a dense matrix).
      Jacobian: (float -> torch.Tensor -> torch.Tensor) option
      /// The iteration has converged when the predicted distance to the solution, in the solve's scaled error norm
      /// (rtol, atol), is below this (0 < κ < 1; Hairer & Wanner's κ, 0.01 to 0.1).
      Tolerance: float
      /// Most iterations per stage before the iteration counts as failed.
      MaxIterations: int
      /// Consecutive failed attempts at one step (each with a fresh Jacobian and a smaller step) before the solve
      /// fails with NewtonDivergence or SingularMatrix.
      MaxFailures: int }

/// Newton options with their defaults.
module NewtonOptions =
    /// A dense autograd Jacobian, κ = 0.01, 10 iterations per stage, 10 failed attempts per step.
    let defaults =
        { Structure = JacobianStructure.Dense; Jacobian = None; Tolerance = 0.01; MaxIterations = 10; MaxFailures = 10 }

    /// Checks the options, naming the argument that is out of range.
    let validate (o: NewtonOptions) =
        if not (o.Tolerance > 0.0 && o.Tolerance < 1.0) then
            raise (System.ArgumentOutOfRangeException("tolerance", o.Tolerance, $"The Newton tolerance must lie in (0, 1); got {o.Tolerance}."))
        if o.MaxIterations < 1 then
            raise (System.ArgumentOutOfRangeException("maxIterations", o.MaxIterations, $"maxIterations must be at least 1; got {o.MaxIterations}."))
        if o.MaxFailures < 1 then
            raise (System.ArgumentOutOfRangeException("maxFailures", o.MaxFailures, $"maxFailures must be at least 1; got {o.MaxFailures}."))
