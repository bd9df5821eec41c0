namespace NeuralOde.Core

/// Options of the adjoint methods.
type AdjointOptions =
    { /// Solver of the backward (adjoint) solve; None uses the forward solver.
      Solver: ButcherTableau option
      /// Step control of the backward solve; None uses the forward one.
      Control: StepControl option
      /// Error control over the state and adjoint channels only, not the parameter-gradient channels
      /// (Kidger, Chen & Lyons 2021, "Hey, that's not an ODE"); usually fewer backward steps.
      Seminorm: bool
      /// Extra checkpoints per interval between output times, where the forward state is stored and the backward
      /// pass restarts from it. More checkpoints: more memory, less drift.
      Checkpoints: int }

/// How gradients of a solve are computed (torchdyn's `sensitivity=`, diffrax's `adjoint=`).
[<RequireQualifiedAccess>]
type Sensitivity =
    /// Backpropagation through the solver's operations (discretise-then-optimise). Exact gradients of the discrete
    /// solve; memory grows with the number of steps.
    | Autograd
    /// The adjoint method by backsolve (Chen et al. 2018; Massaroli et al. 2020, Proposition 1 with integral losses):
    /// the state is re-integrated backward together with the adjoint and the parameter gradients. Memory constant in
    /// the number of steps; the backsolve may drift for vector fields unstable backward in time.
    | Adjoint of AdjointOptions
    /// The interpolated adjoint (SciMLSensitivity's InterpolatingAdjoint with checkpointing): the forward solution
    /// between checkpoints is recomputed and evaluated by dense output while the adjoint is integrated backward, so
    /// the state is never integrated backward. Memory grows with the steps between two checkpoints.
    | InterpolatedAdjoint of AdjointOptions

/// The sensitivity values with their default options: `adjoint`, `interpolatedAdjoint`.
module Sensitivity =
    /// Default adjoint options: the forward solver and control, full error norm, no extra checkpoints.
    let defaultOptions = { Solver = None; Control = None; Seminorm = false; Checkpoints = 0 }

    /// The backsolve adjoint with default options.
    let adjoint = Sensitivity.Adjoint defaultOptions

    /// The interpolated adjoint with default options.
    let interpolatedAdjoint = Sensitivity.InterpolatedAdjoint defaultOptions
