/// Tensors as bytes for a gather: dtype, shape and the values of a contiguous CPU copy; read back as new tensors.
module internal NeuralOde.Core.TensorBytes

open System
open System.IO
open TorchSharp

/// Appends `t` (any device, layout or dtype TorchSharp stores) to `writer`.
let write (writer: BinaryWriter) (t: torch.Tensor) =
    use _ = torch.no_grad()
    use host = t.detach().``to``(torch.CPU).contiguous()
    writer.Write(int (sbyte host.dtype))
    writer.Write(host.dim())
    for d in host.shape do writer.Write d
    let bytes = host.bytes
    writer.Write(int64 bytes.Length)
    writer.Write(ReadOnlySpan<byte>(bytes.ToArray()))

/// Reads one tensor written by `write` (a new CPU tensor the caller owns).
let read (reader: BinaryReader) : torch.Tensor =
    let dtype : torch.ScalarType = LanguagePrimitives.EnumOfValue (sbyte (reader.ReadInt32()))
    let dims = reader.ReadInt64()
    let shape = Array.init (int dims) (fun _ -> reader.ReadInt64())
    let length = reader.ReadInt64()
    let data = reader.ReadBytes(int length)
    let t = torch.empty(shape, dtype = dtype)
    data.AsSpan().CopyTo(t.bytes)
    t
