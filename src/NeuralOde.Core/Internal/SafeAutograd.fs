/// Vector-Jacobian products that raise instead of ending the process. TorchSharp 0.107's `torch.autograd.grad` calls
/// libtorch without catching its errors (native THSAutograd_grad has no CATCH), so any libtorch error there — a graph
/// already freed (a parameter derived outside the field: W = raw.tanh()), a saved tensor modified in place by the
/// field, a shape mismatch — aborts the process (SIGABRT). `torch.autograd.backward` with `inputs` reaches the same
/// engine through an entry point that catches and raises an ExternalException. It accumulates into `.grad`, so
/// each input's gradient is cleared before and restored after: the caller's gradients are left as they were.
module internal NeuralOde.Core.Internal.SafeAutograd

open TorchSharp

type Tensor = torch.Tensor

/// Σ_k seeds[k]ᵀ ∂outputs[k]/∂inputs[i] for every input i (null where an input is not used), as
/// torch.autograd.grad(outputs, inputs, seeds, retain_graph = true, create_graph, allow_unused = true) would give.
/// The graph is retained: a graph shared between calls (a parameter derived outside the field) stays usable; what
/// each call builds is freed with its tensors. Inputs must require grad and be distinct.
let grad (outputs: Tensor[]) (inputs: Tensor[]) (seeds: Tensor[]) (createGraph: bool) : Tensor[] =
    // A non-leaf input has no .grad unless it retains it: reading an undefined one only makes libtorch warn.
    let saved = inputs |> Array.map (fun t -> if t.is_leaf then t.grad else null)
    try
        for t in inputs do
            if t.is_leaf then t.grad <- null
        torch.autograd.backward(outputs, seeds, retain_graph = true, create_graph = createGraph, inputs = inputs)
        inputs |> Array.map (fun t -> t.grad)
    finally
        Array.iter2 (fun (t: Tensor) (g: Tensor) ->
            t.grad <- g
            if not (isNull g) then g.Dispose()) inputs saved
