/// The IDX reader (MNIST / Fashion-MNIST format) on small generated files, plain and gzip-compressed, and on files
/// that are not what they claim.
module NeuralOde.Tests.Datasets.IdxTests

open System
open System.IO
open Expecto
open TorchSharp
open NeuralOde.Core.Datasets
open NeuralOde.Tests.Support

let private withFolder (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("neuralode-idx-").FullName
    try action dir finally Directory.Delete(dir, true)

[<Tests>]
let tests =
    testList "Datasets/Idx" [
        for extension in [ ""; ".gz" ] do
            let kind = if extension = "" then "" else " (gzip)"
            test $"images and labels round-trip through a written file{kind}" {
                withFolder (fun dir ->
                    // Three 2 × 4 images whose pixels count up, and their labels.
                    let pixels = Array.init 24 (fun i -> byte (i * 10))
                    let imagesFile, labelsFile = Path.Combine(dir, "images-idx3-ubyte" + extension), Path.Combine(dir, "labels-idx1-ubyte" + extension)
                    Idx.write imagesFile [| 3; 2; 4 |] pixels
                    Idx.write labelsFile [| 3 |] [| 7uy; 0uy; 9uy |]
                    let raw = Idx.read imagesFile
                    Expect.equal raw.Dimensions [| 3; 2; 4 |] "dimensions"
                    Expect.equal raw.Data pixels "values"
                    use images = Idx.images imagesFile torch.float64
                    Expect.equal images.shape [| 3L; 1L; 2L; 4L |] "images are [count, 1, rows, columns]"
                    let values = Tensors.toArray images
                    Expect.floatClose Accuracy.veryHigh values[5] (50.0 / 255.0) "pixel / 255"
                    Expect.floatClose Accuracy.veryHigh values[23] (230.0 / 255.0) "last pixel"
                    use labels = Idx.labels labelsFile
                    Expect.equal labels.dtype torch.int64 "labels are int64"
                    Expect.equal (labels.data<int64>().ToArray()) [| 7L; 0L; 9L |] "labels")
            }
        test "truncated, foreign, mistyped and overlong files are refused, naming the file" {
            withFolder (fun dir ->
                let good = Path.Combine(dir, "good")
                Idx.write good [| 2; 3 |] (Array.zeroCreate 6)
                let bytes = File.ReadAllBytes good
                let variant (name: string) (content: byte[]) =
                    let path = Path.Combine(dir, name)
                    File.WriteAllBytes(path, content)
                    let e = Raises.raises<InvalidDataException> (fun () -> Idx.read path |> ignore)
                    Expect.stringContains e.Message name "names the file"
                    e.Message
                Expect.stringContains (variant "truncated" bytes[.. bytes.Length - 2]) "ends inside the values" "truncated"
                Expect.stringContains (variant "header-only" bytes[.. 5]) "ends inside the dimensions" "truncated header"
                Expect.stringContains (variant "png" [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0uy; 0uy |]) "magic number" "not IDX"
                let floats = Array.copy bytes
                floats[2] <- 0x0Duy
                Expect.stringContains (variant "floats" floats) "type code is 0x0D" "float IDX not read"
                Expect.stringContains (variant "overlong" (Array.append bytes [| 1uy |])) "bytes after" "trailing bytes"
                let huge = Array.copy bytes
                huge[4] <- 0x7Fuy
                Expect.stringContains (variant "huge" huge) "more than one array can" "a declared size beyond memory is refused before allocating"
                let e = Raises.raises<InvalidDataException> (fun () -> Idx.labels good |> ignore)
                Expect.stringContains e.Message "labels need 1 dimension" "rank checked"
                let gz = Path.Combine(dir, "broken.gz")
                File.WriteAllBytes(gz, [| 0x1fuy; 0x8buy; 8uy; 0uy; 1uy; 2uy; 3uy |])
                Raises.raises<InvalidDataException> (fun () -> Idx.read gz |> ignore) |> ignore)
        }
    ]
