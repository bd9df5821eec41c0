namespace NeuralOde;

/// <summary>
/// Which backend evaluates a model's vector field. Every solve reports the one that ran in
/// <see cref="SolveStatistics.Backend"/>.
/// </summary>
public enum FieldBackend
{
    /// <summary>A compiled backend when one recognises the field and the solve allows it: a <c>Sequential</c> of
    /// <c>Linear</c> and <see cref="GalerkinLinear"/> layers with tanh, sigmoid, ReLU or softplus, on a float32 or
    /// float64 CPU state, runs on host buffers (SIMD kernels in float32) with the same steps, evaluations and gradients
    /// as the module, to rounding. Anything else evaluates the module.</summary>
    Auto = 0,

    /// <summary>Always the module itself, on tensors, differentiated by autograd.</summary>
    Module = 1,
}

internal static class FieldBackendChoices
{
    internal static Core.FieldBackendChoice ToCore(this FieldBackend backend) => backend switch
    {
        FieldBackend.Auto => Core.FieldBackendChoice.Auto,
        FieldBackend.Module => Core.FieldBackendChoice.Module,
        _ => throw new System.ArgumentOutOfRangeException(nameof(backend), backend, "Expected FieldBackend.Auto or FieldBackend.Module."),
    };

    internal static FieldBackend FromCore(Core.FieldBackendChoice backend) =>
        backend == Core.FieldBackendChoice.Module ? FieldBackend.Module : FieldBackend.Auto;
}
