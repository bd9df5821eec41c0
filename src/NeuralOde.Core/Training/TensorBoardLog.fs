/// The trainer's TensorBoard log: scalars written through TorchSharp's SummaryWriter to an event file in a folder.
/// TorchSharp 0.107's writer opens, appends to, flushes and closes the file for every event, so it holds nothing to
/// flush or dispose: a run that fails or is cancelled leaves a complete file up to its last report.
module internal NeuralOde.Core.TensorBoardLog

open System
open System.IO
open TorchSharp

/// Opens a writer on `directory` (made when missing). The writer creates its event file and writes the file's first
/// event at once, so a folder that cannot be written is refused here, before training, with an error naming it.
let create (directory: string) : Modules.SummaryWriter =
    if String.IsNullOrWhiteSpace directory then
        raise (ArgumentException("The TensorBoard directory is empty; give a folder for the event files.", "tensorBoardDirectory"))
    let full =
        try Path.GetFullPath directory
        with e -> raise (ArgumentException($"The TensorBoard directory '{directory}' is not a valid path: {e.Message}", "tensorBoardDirectory", e))
    if File.Exists full then raise (IOException($"The TensorBoard directory '{full}' is a file; give a folder for the event files."))
    try torch.utils.tensorboard.SummaryWriter(full)
    with
    | :? UnauthorizedAccessException as e ->
        raise (UnauthorizedAccessException($"TensorBoard logs cannot be written to '{full}' (checked before training): {e.Message}", e))
    | :? IOException as e -> raise (IOException($"TensorBoard logs cannot be written to '{full}' (checked before training): {e.Message}", e))

/// Writes `values` (tag, value; stored as float32) at `step`, one event each; TorchSharp stamps each with the wall time
/// in whole Unix seconds (the time of each iteration is logged exactly as its own scalar).
let scalars (writer: Modules.SummaryWriter) (step: int) (values: (string * float) list) =
    for tag, value in values do writer.add_scalar(tag, float32 value, step)
