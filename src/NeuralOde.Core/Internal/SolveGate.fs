/// One pass at a time through state that solves share: the forward and backward passes of the generic adjoint
/// (AdjointFunction) run under the gate of the parameter
/// tensors of their field, so that one block used from two threads serialises there instead of corrupting
/// native memory (it ended the process with SIGSEGV or a heap-corruption abort), while two blocks run in parallel.
module internal NeuralOde.Core.Internal.SolveGate

open System.Runtime.CompilerServices

let private gates = ConditionalWeakTable<obj, obj>()

/// Runs `action` holding the gate of `key` (reentrant on one thread); without a gate when `key` is null.
let run (key: obj) (action: unit -> 'a) : 'a =
    if isNull key then action ()
    else lock (gates.GetValue(key, fun _ -> obj ())) action
