/// Checkpoints: a model's parameters and buffers, its optimizer's state and the trainer's position, in one file
/// written atomically — to a temporary file beside it, flushed to the disk, then renamed over the old one — so an
/// interrupted save (a killed process, a full disk) never destroys the previous checkpoint. The file ends with a
/// SHA-256 of everything before it: a truncated or altered file is refused with a named error, and nothing in a
/// file is ever executed (plain numbers and TorchSharp's tensor format, no serialised objects).
module NeuralOde.Core.Checkpoint

open System
open System.IO
open System.Security.Cryptography
open TorchSharp
open type TorchSharp.torch.nn

/// Where training stands: the last completed epoch and iteration, and the early-stopping record.
type CheckpointState =
    { /// The last completed epoch (0: none).
      Epoch: int
      /// The last completed iteration.
      Iteration: int
      /// The best monitored loss so far (+∞: none).
      BestLoss: float }

let private magic = "NEURALODE-CHECKPOINT"
let [<Literal>] private Version = 1

let private optimizerHelper (optimizer: torch.optim.Optimizer) =
    match optimizer with
    | :? TorchSharp.Modules.OptimizerHelper as h -> h
    | null -> null
    | other -> raise (NotSupportedException($"Checkpoints save optimizers that derive from TorchSharp's OptimizerHelper (Adam, SGD, AdamW, RMSprop, ...); {other.GetType().Name} does not."))

/// Raises (IOException or UnauthorizedAccessException, naming `path`) unless a checkpoint can be written there: its
/// folder is made and a temporary file is created and removed in it. The trainer calls it before the first epoch.
let checkWritable (path: string) =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The checkpoint path is empty.", "checkpointPath"))
    let full = try Path.GetFullPath path with e -> raise (ArgumentException($"The checkpoint path '{path}' is not a valid path: {e.Message}", "checkpointPath", e))
    if Directory.Exists full then raise (IOException($"The checkpoint path '{full}' is a folder; give a file name."))
    let directory = Path.GetDirectoryName full
    let probe = Path.Combine(directory, $".{Path.GetFileName full}.{Guid.NewGuid():N}.probe")
    try
        try
            Directory.CreateDirectory directory |> ignore
            (use _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None) in ())
        with
        | :? UnauthorizedAccessException as e -> raise (UnauthorizedAccessException($"A checkpoint cannot be written to '{full}' (checked before training): {e.Message}", e))
        | :? IOException as e -> raise (IOException($"A checkpoint cannot be written to '{full}' (checked before training): {e.Message}", e))
    finally
        try if File.Exists probe then File.Delete probe with _ -> ()

/// Saves `model`, `optimizer` (null: none) and `state` to `path` atomically.
let save (path: string) (model: Module) (optimizer: torch.optim.Optimizer) (state: CheckpointState) =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("path is empty.", "path"))
    if isNull model then raise (ArgumentNullException("model"))
    let helper = optimizerHelper optimizer
    let full = Path.GetFullPath path
    let directory = Path.GetDirectoryName full
    Directory.CreateDirectory directory |> ignore
    let temporary = Path.Combine(directory, $".{Path.GetFileName full}.{Guid.NewGuid():N}.tmp")
    try
        use payload = new MemoryStream()
        (use w = new BinaryWriter(payload, Text.Encoding.UTF8, true)
         w.Write magic
         w.Write Version
         w.Write state.Epoch
         w.Write state.Iteration
         w.Write state.BestLoss
         use modelBytes = new MemoryStream()
         (use mw = new BinaryWriter(modelBytes, Text.Encoding.UTF8, true) in model.save(mw) |> ignore)
         w.Write modelBytes.Length
         w.Write(modelBytes.GetBuffer(), 0, int modelBytes.Length)
         use optimizerBytes = new MemoryStream()
         if not (isNull helper) then
             use ow = new BinaryWriter(optimizerBytes, Text.Encoding.UTF8, true)
             helper.save_state_dict ow
         w.Write(not (isNull helper))
         w.Write optimizerBytes.Length
         w.Write(optimizerBytes.GetBuffer(), 0, int optimizerBytes.Length))
        let bytes = payload.ToArray()
        let hash = SHA256.HashData bytes
        (use file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None)
         file.Write(bytes, 0, bytes.Length)
         file.Write(hash, 0, hash.Length)
         file.Flush true)
        File.Move(temporary, full, true)
    finally
        if File.Exists temporary then File.Delete temporary

let private corrupt (path: string) (why: string) =
    InvalidDataException($"{path} is not a usable NeuralOde checkpoint: {why}. The previous checkpoint (if any) was never overwritten by a failed save; check the path.")

/// A length-prefixed part of the payload (the model's or the optimizer's bytes), its length checked against what
/// follows: a re-signed file with a negative or huge length is corrupt, not an ArgumentOutOfRangeException.
let private block (path: string) (r: BinaryReader) (what: string) =
    let length = r.ReadInt64()
    let left = r.BaseStream.Length - r.BaseStream.Position
    if length < 0L || length > left then raise (corrupt path $"its {what} part claims {length} bytes, but {left} follow")
    r.ReadBytes(int length)

/// Loads a checkpoint written by `save` into `model` and `optimizer` (null: skip its state); returns the trainer's
/// position. A truncated, altered or foreign file raises InvalidDataException naming it, and so does a checkpoint of
/// another model (naming the first entries whose shape or dtype differs and the names missing or unexpected), before
/// anything is loaded.
let load (path: string) (model: Module) (optimizer: torch.optim.Optimizer) : CheckpointState =
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("path is empty.", "path"))
    if isNull model then raise (ArgumentNullException("model"))
    if not (File.Exists path) then raise (FileNotFoundException($"No checkpoint at {path}.", path))
    let helper = optimizerHelper optimizer
    let all = File.ReadAllBytes path
    if all.Length < 32 + magic.Length then raise (corrupt path "it is too short (truncated?)")
    let bytes = all[.. all.Length - 33]
    if not (SHA256.HashData(bytes).AsSpan().SequenceEqual(ReadOnlySpan(all, all.Length - 32, 32))) then
        raise (corrupt path "its checksum does not match (truncated or altered)")
    use r = new BinaryReader(new MemoryStream(bytes))
    try
        if r.ReadString() <> magic then raise (corrupt path "it does not start with the checkpoint marker")
        let version = r.ReadInt32()
        if version <> Version then raise (corrupt path $"its format version is {version}; this library reads {Version}")
        let state = { Epoch = r.ReadInt32(); Iteration = r.ReadInt32(); BestLoss = r.ReadDouble() }
        let modelBytes = block path r "model"
        match Internal.CheckpointEntries.differences 5 (Internal.CheckpointEntries.read (fun why -> corrupt path why :> exn) modelBytes) model with
        | [] -> ()
        | lines -> raise (InvalidDataException($"{path} holds the parameters of another model: " + String.Join("; ", lines) + ". Load it into a model built like the one that saved it."))
        (use mr = new BinaryReader(new MemoryStream(modelBytes)) in model.load(mr) |> ignore)
        let hasOptimizer = r.ReadBoolean()
        let optimizerBytes = block path r "optimizer"
        if hasOptimizer && not (isNull helper) then
            use orr = new BinaryReader(new MemoryStream(optimizerBytes))
            helper.load_state_dict orr
        state
    with
    | :? EndOfStreamException -> raise (corrupt path "it ends early")
