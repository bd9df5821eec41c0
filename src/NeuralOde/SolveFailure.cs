namespace NeuralOde;

/// <summary>Why a solve stopped before its end time (the values of the core's OdeFailure).</summary>
public enum SolveFailure
{
    /// <summary>The step size fell below what the time's resolution (or minStep) allows.</summary>
    StepSizeUnderflow = 1,
    /// <summary>The step budget (maxSteps) ran out.</summary>
    MaxStepsExceeded = 2,
    /// <summary>The state or the vector field's output held NaN or Inf.</summary>
    NonFiniteValue = 3,
    /// <summary>The vector field returned a tensor whose shape, dtype or device differs from the state's, or
    /// modified its input in place.</summary>
    VectorFieldMismatch = 4,
    /// <summary>The step-size controller produced a NaN or infinite step.</summary>
    InvalidStepSize = 5,
    /// <summary>The vector field (or the running loss) raised an exception: the inner exception.</summary>
    VectorFieldFailed = 6,
}
