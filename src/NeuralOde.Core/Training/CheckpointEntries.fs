/// The model part of a checkpoint read as a table of contents before anything is loaded: TorchSharp's module format
/// (Module.save: a LEB128 entry count, then per entry its name, LEB128 dtype code, rank and dimensions, and the raw
/// data) walked without copying a tensor, so a checkpoint of another model is refused naming the file and the
/// entries that differ instead of with TorchSharp's "Mismatched state_dict sizes", and a crafted block with lengths
/// that run past its end is refused as corrupt.
module internal NeuralOde.Core.Internal.CheckpointEntries

open System
open System.IO
open TorchSharp

/// One stored entry: its state_dict name, dtype and shape.
type Entry = { Name: string; DType: torch.ScalarType; Shape: int64[] }

/// Bytes per element of each dtype TorchSharp saves (its ScalarType codes).
let private elementSize =
    Map [ 0, 1L; 1, 1L; 2, 2L; 3, 4L; 4, 8L; 5, 2L; 6, 4L; 7, 8L; 9, 8L; 10, 16L; 11, 1L; 15, 2L ]

/// A LEB128 number (TorchSharp's Utils.LEB128Codec), refused when longer than a non-negative int64 allows.
let private decode (corrupt: string -> exn) (r: BinaryReader) =
    let rec go (acc: int64) (shift: int) =
        if shift > 56 then raise (corrupt "a length in its model part is longer than 64 bits")
        let b = int64 (r.ReadByte())
        let acc = acc ||| ((b &&& 0x7FL) <<< shift)
        if b &&& 0x80L = 0L then acc else go acc (shift + 7)
    go 0L 0

/// The entries of a model block written by Module.save; `corrupt why` is the exception for a malformed block.
let read (corrupt: string -> exn) (block: byte[]) : Entry list =
    use r = new BinaryReader(new MemoryStream(block))
    let count = decode corrupt r
    if count > int64 block.Length then raise (corrupt $"its model part claims {count} entries in {block.Length} bytes")
    [ for _ in 1L .. count do
        let name = r.ReadString()
        let code = decode corrupt r
        let size =
            match elementSize.TryFind(int code) with
            | Some s when code < 64L -> s
            | _ -> raise (corrupt $"entry '{name}' has an unknown dtype code {code}")
        let rank = decode corrupt r
        if rank > 64L then raise (corrupt $"entry '{name}' has rank {rank}")
        let shape = Array.init (int rank) (fun _ -> decode corrupt r)
        let bytes =
            try shape |> Array.fold (fun acc d -> Checked.(*) acc d) size
            with :? OverflowException -> raise (corrupt $"entry '{name}' has a shape whose size overflows 64 bits")
        if bytes > r.BaseStream.Length - r.BaseStream.Position then raise (corrupt $"entry '{name}' runs past the end of its model part")
        r.BaseStream.Seek(bytes, SeekOrigin.Current) |> ignore
        yield { Name = name; DType = LanguagePrimitives.EnumOfValue<sbyte, torch.ScalarType>(sbyte code); Shape = shape } ]

let private shapeText (shape: int64[]) = "[" + String.Join(", ", shape) + "]"

/// The differences between the stored entries and `model`'s state_dict, as lines of a message (none when they fit):
/// the entries whose shape or dtype differs, then the names missing and unexpected, each list cut at `shown`.
let differences (shown: int) (entries: Entry list) (model: torch.nn.Module) : string list =
    let target = model.state_dict()
    let stored = entries |> List.map (fun e -> e.Name) |> set
    let differing =
        [ for e in entries do
            match target.TryGetValue e.Name with
            | true, t when t.shape <> e.Shape ->
                yield $"'{e.Name}': the model has shape {shapeText t.shape}, the file {shapeText e.Shape}"
            | true, t when t.dtype <> e.DType -> yield $"'{e.Name}': the model has dtype {t.dtype}, the file {e.DType}"
            | _ -> () ]
    let missing = [ for k in target.Keys do if not (stored.Contains k) then yield k ]
    let unexpected = [ for e in entries do if not (target.ContainsKey e.Name) then yield e.Name ]
    let listed (what: string) (xs: string list) =
        if xs.IsEmpty then []
        else
            let more = if xs.Length > shown then $" and {xs.Length - shown} more" else ""
            [ what + String.Join(", ", List.truncate shown xs) + more ]
    let quoted = List.map (sprintf "'%s'")
    listed "entries that differ: " differing
    @ listed "in the model but not in the file: " (quoted missing)
    @ listed "in the file but not in the model: " (quoted unexpected)
