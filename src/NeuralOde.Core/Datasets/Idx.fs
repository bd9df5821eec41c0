/// The IDX files of MNIST and Fashion-MNIST (LeCun et al. 1998; Xiao et al. 2017): a magic number — two zero bytes,
/// a type code, the number of dimensions — then each dimension as a big-endian int32, then the values. Read from a
/// file, gunzipped when its name ends in ".gz" (as the Debian packages dataset-fashion-mnist and the original
/// downloads ship them). Only unsigned bytes (type 0x08), the type of these datasets, are read; anything else, a
/// truncated file or trailing bytes raise InvalidDataException naming the file.
module NeuralOde.Core.Datasets.Idx

open System
open System.IO
open System.IO.Compression
open TorchSharp

/// The dimensions and values of an IDX file of unsigned bytes.
type IdxArray =
    { /// Sizes, outermost first (images: count, rows, columns; labels: count).
      Dimensions: int[]
      /// The values, row-major.
      Data: byte[] }

/// The most values one file may hold (one .NET array: Array.MaxLength).
let [<Literal>] MaxValues = 2147483591L

let private invalid (path: string) (why: string) =
    InvalidDataException($"'{path}' is not a valid IDX file of unsigned bytes: {why}.")

let private openRead (path: string) : Stream =
    let file = File.OpenRead path :> Stream
    if path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) then new GZipStream(file, CompressionMode.Decompress) :> Stream
    else file

/// Reads exactly `count` bytes, or fails naming the file.
let private readExactly (path: string) (stream: Stream) (count: int) (what: string) =
    let buffer = Array.zeroCreate<byte> count
    let mutable read = 0
    while read < count do
        let n = try stream.Read(buffer, read, count - read) with :? InvalidDataException as e -> raise (invalid path $"its compressed data is corrupt ({e.Message})")
        if n = 0 then raise (invalid path $"it ends inside {what} ({read} of {count} bytes)")
        read <- read + n
    buffer

/// Reads an IDX file (gzip-compressed when the name ends in .gz).
let read (path: string) : IdxArray =
    if isNull path then raise (ArgumentNullException("path"))
    if not (File.Exists path) then raise (FileNotFoundException($"No IDX file at '{path}'.", path))
    use stream = openRead path
    let magic = readExactly path stream 4 "the magic number"
    if magic[0] <> 0uy || magic[1] <> 0uy then raise (invalid path $"its magic number starts with {magic[0]:X2} {magic[1]:X2}, not 00 00")
    if magic[2] <> 0x08uy then raise (invalid path $"its type code is 0x{magic[2]:X2}; only unsigned bytes (0x08) are read")
    let rank = int magic[3]
    if rank < 1 || rank > 4 then raise (invalid path $"it declares {rank} dimensions; 1 to 4 are read")
    let header = readExactly path stream (4 * rank) "the dimensions"
    let dimensions =
        Array.init rank (fun i ->
            let d = (int header[4 * i] <<< 24) ||| (int header[4 * i + 1] <<< 16) ||| (int header[4 * i + 2] <<< 8) ||| int header[4 * i + 3]
            if d < 0 then raise (invalid path $"dimension {i} is {d}")
            d)
    let total = dimensions |> Array.fold (fun acc d -> acc * int64 d) 1L
    let shape = String.Join(" × ", dimensions)
    if total > MaxValues then raise (invalid path $"its dimensions {shape} hold {total} values, more than one array can")
    // An uncompressed file must be long enough for what it declares: checked before allocating for it.
    if not (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) then
        let available = FileInfo(path).Length - 4L - 4L * int64 rank
        if available < total then raise (invalid path $"it ends inside the values ({available} of {total} bytes)")
    let data = readExactly path stream (int total) "the values"
    if stream.ReadByte() <> -1 then raise (invalid path $"it has bytes after the {total} values its dimensions declare")
    { Dimensions = dimensions; Data = data }

/// Writes an IDX file of unsigned bytes (gzip-compressed when the name ends in .gz): for tests and small fixtures.
let write (path: string) (dimensions: int[]) (data: byte[]) =
    if isNull dimensions || dimensions.Length < 1 || dimensions.Length > 4 then
        raise (ArgumentException("dimensions must hold 1 to 4 sizes.", "dimensions"))
    if dimensions |> Array.exists (fun d -> d < 0) then
        let given = String.Join(", ", dimensions)
        raise (ArgumentException($"dimensions must not be negative; got {given}.", "dimensions"))
    let total = dimensions |> Array.fold (fun acc d -> acc * int64 d) 1L
    if isNull data || int64 data.Length <> total then
        let given = if isNull data then 0 else data.Length
        let shape = String.Join(" × ", dimensions)
        raise (ArgumentException($"data holds {given} values; the dimensions {shape} need {total}.", "data"))
    use file = File.Create path
    use stream = if path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) then new GZipStream(file, CompressionLevel.Optimal) :> Stream else file :> Stream
    stream.Write([| 0uy; 0uy; 0x08uy; byte dimensions.Length |], 0, 4)
    for d in dimensions do stream.Write([| byte (d >>> 24); byte (d >>> 16); byte (d >>> 8); byte d |], 0, 4)
    stream.Write(data, 0, data.Length)

/// Images [count, 1, rows, columns] with values in [0, 1] (pixel / 255), of `dtype`, from an IDX file of rank 3.
let images (path: string) (dtype: torch.ScalarType) : torch.Tensor =
    let idx = read path
    if idx.Dimensions.Length <> 3 then raise (invalid path $"images need 3 dimensions (count, rows, columns); it has {idx.Dimensions.Length}")
    use bytes = torch.tensor(idx.Data, dtype = torch.uint8)
    use shaped = bytes.reshape(int64 idx.Dimensions[0], 1L, int64 idx.Dimensions[1], int64 idx.Dimensions[2])
    use asFloat = shaped.to_type(dtype)
    use scale = Scalar.op_Implicit (1.0 / 255.0)
    asFloat.mul(scale)

/// Labels [count] (int64) from an IDX file of rank 1.
let labels (path: string) : torch.Tensor =
    let idx = read path
    if idx.Dimensions.Length <> 1 then raise (invalid path $"labels need 1 dimension; it has {idx.Dimensions.Length}")
    use bytes = torch.tensor(idx.Data, dtype = torch.uint8)
    bytes.to_type(torch.int64)
