/// The field backend a test asks a model for, and the one that ran.
module NeuralOde.Tests.Support.Compiled

open NeuralOde.Core

/// Auto (compiled where it can run) for true, Module for false.
let choice (compiled: bool) = if compiled then FieldBackendChoice.Auto else FieldBackendChoice.Module

/// Whether a model's last solve ran on a compiled backend (its statistics' Backend).
let inline ran (model: ^M) = (^M: (member LastStatistics: SolveStatistics) model).Backend.StartsWith "compiled"

/// The counts of a solve's statistics, without the backend (for comparing a compiled solve with the module's).
let counts (s: SolveStatistics) = s.FunctionEvaluations, s.AcceptedSteps, s.RejectedSteps
