/// PyTorch weights in and out: a state_dict saved by torchdiffeq/torchdyn users as safetensors loads into the
/// equivalent NeuralOde model, and ours saves for them (TorchSharp.PyBridge's safetensors reader and writer, a
/// well-kept library, rather than a hand-written format). A file is never executed: safetensors is plain JSON and
/// raw numbers, and its header is checked here before PyBridge reads it, so a truncated or crafted file gets an
/// InvalidDataException naming it; pickled `.pt` files (which can run code when loaded) are refused.
module NeuralOde.Core.SafetensorsWeights

open System
open System.IO
open System.Text.Json
open TorchSharp
open type TorchSharp.torch.nn

let private invalid (path: string) (why: string) =
    InvalidDataException($"{path} is not a usable safetensors file: {why}.")

let private dtypes = set [ "F64"; "F32"; "F16"; "BF16"; "I64"; "I32"; "I16"; "I8"; "U8"; "BOOL" ]
let private width = Map [ "F64", 8L; "F32", 4L; "F16", 2L; "BF16", 2L; "I64", 8L; "I32", 4L; "I16", 2L; "I8", 1L; "U8", 1L; "BOOL", 1L ]

/// Refuses a header that is not strict UTF-8 (safetensors requires it; System.Text.Json would otherwise
/// fail later, with an InvalidOperationException, on the first name it cannot transcode).
let private checkUtf8 (path: string) (header: byte[]) =
    try Text.UTF8Encoding(false, true).GetString header |> ignore
    with :? Text.DecoderFallbackException as e ->
        raise (invalid path $"its header is not valid UTF-8 (byte {e.Index} of the header; tensor names must be UTF-8)")

/// The number of bytes `shape` of `dtype` takes, computed with overflow checks: a crafted shape whose product wraps
/// around 64 bits (to 0, say) would otherwise pass as an empty tensor.
let private byteCount (path: string) (name: string) (dtype: string) (shape: int64 list) =
    try shape |> List.fold (fun acc d -> Checked.(*) acc d) width[dtype]
    with :? OverflowException ->
        raise (invalid path $"tensor '{name}' has shape {shape} whose size in bytes overflows 64 bits")

/// One entry of the header: its name, dtype, shape and [begin, end) data offsets, each checked.
let private entryOf (path: string) (dataLength: int64) (entry: JsonProperty) =
    let v = entry.Value
    let field (name: string) =
        match v.ValueKind with
        | JsonValueKind.Object ->
            (match v.TryGetProperty name with
             | true, x -> x
             | _ -> raise (invalid path $"tensor '{entry.Name}' has no {name}"))
        | _ -> raise (invalid path $"tensor '{entry.Name}' is not described by an object")
    let dtype = (field "dtype").GetString()
    if isNull dtype || not (dtypes.Contains dtype) then raise (invalid path $"tensor '{entry.Name}' has an unknown dtype '{dtype}'")
    let shape =
        try [ for d in (field "shape").EnumerateArray() -> d.GetInt64() ]
        with _ -> raise (invalid path $"tensor '{entry.Name}' has a malformed shape")
    if shape |> List.exists (fun d -> d < 0L) then raise (invalid path $"tensor '{entry.Name}' has a negative dimension")
    let offsets =
        try [ for d in (field "data_offsets").EnumerateArray() -> d.GetInt64() ]
        with _ -> raise (invalid path $"tensor '{entry.Name}' has malformed data offsets")
    match offsets with
    | [ b; e ] when 0L <= b && b <= e && e <= dataLength ->
        let expected = byteCount path entry.Name dtype shape
        if e - b <> expected then raise (invalid path $"tensor '{entry.Name}' holds {e - b} bytes but its dtype and shape need {expected}")
        entry.Name, b, e
    | _ -> raise (invalid path $"tensor '{entry.Name}' has data offsets outside the file's {dataLength} data bytes")

/// Refuses a name given twice (JSON allows it; the Python reader does not) and two tensors whose data overlap.
let private checkDistinct (path: string) (entries: (string * int64 * int64) list) =
    match entries |> List.countBy (fun (n, _, _) -> n) |> List.tryFind (fun (_, c) -> c > 1) with
    | Some(name, count) -> raise (invalid path $"tensor '{name}' is described {count} times in the header")
    | None -> ()
    let nonEmpty = entries |> List.filter (fun (_, b, e) -> e > b) |> List.sortBy (fun (_, b, _) -> b)
    for (n1, b1, e1), (n2, b2, e2) in List.pairwise nonEmpty do
        if b2 < e1 then raise (invalid path $"the data of tensors '{n1}' (bytes {b1}..{e1}) and '{n2}' (bytes {b2}..{e2}) overlap")

/// Checks the layout of a safetensors file: an 8-byte header length within the file, a UTF-8 JSON header whose
/// entries have distinct names, a known dtype, a non-negative shape and data offsets inside the data block that match
/// dtype × shape (computed without overflow) and do not overlap another entry's.
let validate (path: string) =
    let ext = Path.GetExtension(path).ToLowerInvariant()
    if ext = ".pt" || ext = ".pth" || ext = ".pkl" || ext = ".bin" then
        raise (NotSupportedException($"{path} looks like a pickled PyTorch file, which can execute code when loaded: it is not read. Save a safetensors file instead (safetensors.torch.save_file(model.state_dict(), \"weights.safetensors\"))."))
    if not (File.Exists path) then raise (FileNotFoundException($"No weights file at {path}.", path))
    use stream = File.OpenRead path
    let length = stream.Length
    if length < 8L then raise (invalid path "it is shorter than the 8-byte header length")
    let buffer = Array.zeroCreate<byte> 8
    stream.ReadExactly(buffer, 0, 8)
    let headerLength = BitConverter.ToInt64(buffer, 0)
    if headerLength <= 0L || headerLength > length - 8L || headerLength > 100_000_000L then
        raise (invalid path $"its header length {headerLength} does not fit in the file ({length} bytes)")
    let header = Array.zeroCreate<byte> (int headerLength)
    stream.ReadExactly(header, 0, header.Length)
    checkUtf8 path header
    let dataLength = length - 8L - headerLength
    let document =
        try JsonDocument.Parse(ReadOnlyMemory header)
        with :? JsonException as e -> raise (invalid path $"its header is not JSON ({e.Message})")
    use _ = document
    if document.RootElement.ValueKind <> JsonValueKind.Object then raise (invalid path "its header is not a JSON object")
    [ for entry in document.RootElement.EnumerateObject() do
        if entry.Name <> "__metadata__" then yield entryOf path dataLength entry ]
    |> checkDistinct path

/// The name a state_dict entry gets after `renames` (prefix → prefix, the first that matches).
let private rename (renames: (string * string) list) (name: string) =
    match renames |> List.tryFind (fun (from, _) -> name.StartsWith(from, StringComparison.Ordinal)) with
    | Some(from, into) -> into + name.Substring from.Length
    | None -> name

/// Loads the safetensors file `path` into `model`: each stored tensor, its name changed by `renames` (prefix pairs,
/// e.g. ("vf.vf.", "vector_field.") for a torchdyn NeuralODE), is copied into the model's entry of that name, with
/// the entry's dtype and device. With `strict`, a model entry the file lacks or a file entry the model lacks is an
/// error; shapes must always match. Returns the names loaded. Raises InvalidDataException naming the file when it is
/// malformed (validate), ArgumentException ("renames") when two stored names are renamed onto one model name.
let load (path: string) (model: Module) (renames: (string * string) list) (strict: bool) : string list =
    if isNull model then raise (ArgumentNullException("model"))
    validate path
    let stored = TorchSharp.PyBridge.Safetensors.LoadStateDict(path, null)
    try
        let target = model.state_dict()
        let renamed = [ for kv in stored -> kv.Key, rename renames kv.Key ]
        for target, sources in renamed |> List.groupBy snd do
            match sources with
            | (first, _) :: (second, _) :: _ ->
                raise (ArgumentException($"The renames map two tensors of {path}, '{first}' and '{second}', onto one model name '{target}': one would be lost. Give prefixes that keep the names apart.", "renames"))
            | _ -> ()
        let byName = stored |> Seq.map (fun kv -> rename renames kv.Key, kv.Value) |> Map.ofSeq
        if strict then
            let missing = target.Keys |> Seq.filter (fun k -> not (byName.ContainsKey k)) |> List.ofSeq
            let unexpected = byName |> Map.toList |> List.map fst |> List.filter (fun k -> not (target.ContainsKey k))
            if not missing.IsEmpty || not unexpected.IsEmpty then
                raise (ArgumentException($"The weights in {path} do not match the model: missing {missing}, unexpected {unexpected}. Map the names with renames (prefix pairs), or load with strict = false.", "renames"))
        use _ = torch.no_grad()
        [ for KeyValue(name, value) in byName do
            match target.TryGetValue name with
            | true, t ->
                if t.shape <> value.shape then
                    raise (ArgumentException($"{name}: the file holds shape {Internal.TensorOps.shapeText value}, the model {Internal.TensorOps.shapeText t}.", "model"))
                use converted = value.``to``(t.dtype, t.device)
                t.copy_(converted) |> ignore
                yield name
            | _ -> () ]
    finally
        for kv in stored do kv.Value.Dispose()

/// Saves `model`'s state_dict to `path` as safetensors, its names changed by `renames` (prefix pairs: ours → theirs),
/// for `safetensors.torch.load_file` on the PyTorch side.
let save (path: string) (model: Module) (renames: (string * string) list) =
    if isNull model then raise (ArgumentNullException("model"))
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("path is empty.", "path"))
    let state = Collections.Generic.Dictionary<string, torch.Tensor>()
    for KeyValue(name, value) in model.state_dict() do state[rename renames name] <- value
    TorchSharp.PyBridge.Safetensors.SaveStateDict(path, state)
