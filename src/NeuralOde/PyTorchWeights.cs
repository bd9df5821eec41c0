using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.FSharp.Collections;
using static TorchSharp.torch.nn;

namespace NeuralOde;

/// <summary>
/// PyTorch weights in and out as safetensors (TorchSharp.PyBridge): a <c>state_dict</c> saved by a torchdiffeq or
/// torchdyn user (<c>safetensors.torch.save_file(model.state_dict(), path)</c>) loads into the equivalent NeuralOde
/// model, and ours saves for <c>safetensors.torch.load_file</c>. Files are never executed: the header is checked first
/// (a truncated or crafted file raises <see cref="System.IO.InvalidDataException"/> naming it), and pickled
/// <c>.pt</c> files are refused.
/// </summary>
public static class PyTorchWeights
{
    /// <summary>Loads the safetensors file into <paramref name="model"/>; returns the names loaded.</summary>
    /// <param name="model">The NeuralOde model (e.g. a <see cref="NeuralOdeBlock"/>).</param>
    /// <param name="path">The safetensors file.</param>
    /// <param name="renames">Name prefixes to map, theirs → ours, e.g. { ["vf."] = "block.vector_field." } for a PyTorch field
    /// saved under "vf." into a <see cref="NeuralOdeBlock"/> (the model's names are the keys of its <c>state_dict()</c>;
    /// a strict load that does not match lists what is missing and unexpected).</param>
    /// <param name="strict">Require the file and the model to hold the same names.</param>
    public static IReadOnlyList<string> LoadSafetensors(Module model, string path, IReadOnlyDictionary<string, string>? renames = null,
                                                        bool strict = true) =>
        Core.SafetensorsWeights.load(path, model, Pairs(renames), strict).ToList();

    /// <summary>Saves <paramref name="model"/>'s state_dict as safetensors, names mapped by prefix (ours → theirs).</summary>
    public static void SaveSafetensors(Module model, string path, IReadOnlyDictionary<string, string>? renames = null) =>
        Core.SafetensorsWeights.save(path, model, Pairs(renames));

    static FSharpList<Tuple<string, string>> Pairs(IReadOnlyDictionary<string, string>? renames) =>
        ListModule.OfSeq((renames ?? new Dictionary<string, string>()).Select(kv => Tuple.Create(kv.Key, kv.Value)));
}
