/// Reads TensorBoard event files back, independently of the writer: the TFRecord framing (a uint64 length, the masked
/// CRC32C of its 8 bytes, the data, the masked CRC32C of the data; every CRC checked, nothing left over) and the
/// Event protobufs in it, parsed with the classes TorchSharp ships (Tensorboard.Event, Google.Protobuf).
module NeuralOde.Tests.Support.EventFiles

open System
open System.IO

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) by table.
let private table =
    Array.init 256 (fun n ->
        let mutable c = uint32 n
        for _ in 1 .. 8 do c <- if c &&& 1u <> 0u then 0x82F63B78u ^^^ (c >>> 1) else c >>> 1
        c)

/// The CRC32C of `count` bytes of `bytes` from `offset`.
let crc32c (bytes: byte[]) (offset: int) (count: int) =
    let mutable c = 0xFFFFFFFFu
    for i in offset .. offset + count - 1 do c <- table[int ((c ^^^ uint32 bytes[i]) &&& 0xFFu)] ^^^ (c >>> 8)
    c ^^^ 0xFFFFFFFFu

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant.
let masked (crc: uint32) = ((crc >>> 15) ||| (crc <<< 17)) + 0xa282ead8u

/// The records of a TFRecord file, each CRC checked (failing with the record's offset otherwise).
let records (path: string) : byte[] list =
    let bytes = File.ReadAllBytes path
    let rec read (position: int) acc =
        if position = bytes.Length then List.rev acc
        else
            if bytes.Length - position < 12 then failwithf "%s: a truncated header at byte %d" path position
            let length = BitConverter.ToUInt64(bytes, position)
            if masked (crc32c bytes position 8) <> BitConverter.ToUInt32(bytes, position + 8) then
                failwithf "%s: the length's CRC is wrong at byte %d" path position
            if uint64 (bytes.Length - position - 16) < length then failwithf "%s: a truncated record at byte %d" path position
            let n = int length
            if masked (crc32c bytes (position + 12) n) <> BitConverter.ToUInt32(bytes, position + 12 + n) then
                failwithf "%s: the data's CRC is wrong at byte %d" path position
            read (position + 16 + n) (bytes[position + 12 .. position + 11 + n] :: acc)
    read 0 []

/// The events of a file.
let events (path: string) = records path |> List.map Tensorboard.Event.Parser.ParseFrom

/// One scalar of a summary event.
type Scalar = { Tag: string; Step: int64; Value: float32; WallTime: float }

/// The scalars of a file, in order.
let scalars (path: string) =
    [ for e in events path do
        if not (isNull e.Summary) then
            for v in e.Summary.Value do
                if v.ValueCase = Tensorboard.Summary.Types.Value.ValueOneofCase.SimpleValue then
                    yield { Tag = v.Tag; Step = e.Step; Value = v.SimpleValue; WallTime = e.WallTime } ]

/// The event files in `folder`.
let files (folder: string) = Directory.GetFiles(folder, "events.out.tfevents.*") |> Array.sort
