module NeuralOde.Tests.Interop.SafetensorsWeightsTests

open System
open System.IO
open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules

/// The fixture made by tests/fixtures/make_safetensors_fixture.py (a PyTorch field's state_dict under "vf.").
let private fixture = Path.Combine(__SOURCE_DIRECTORY__, "..", "..", "fixtures", "mlp-field.safetensors")
let private expected = Path.Combine(__SOURCE_DIRECTORY__, "..", "..", "fixtures", "mlp-field.expected.json")

let private field () = chain [ m (Linear(2L, 4L)); m (Tanh()); m (Linear(4L, 2L)) ]

let private temporary (name: string) = Path.Combine(Path.GetTempPath(), $"neuralode-{Guid.NewGuid():N}-{name}")

/// A safetensors file built byte by byte: the 8-byte little-endian header length, the header's bytes, `data` zeros.
let private craft (header: byte[]) (data: int) =
    let path = temporary "crafted.safetensors"
    File.WriteAllBytes(path, Array.concat [ BitConverter.GetBytes(int64 header.Length); header; Array.zeroCreate data ])
    path

/// Loads a crafted file into `model` (renames `renames`, not strict) and returns the exception of type 'E.
let private refused<'E when 'E :> exn> (model: Module) (renames: (string * string) list) (path: string) : 'E =
    try Raises.raises<'E> (fun () -> SafetensorsWeights.load path model renames false |> ignore)
    finally File.Delete path

[<Tests>]
let tests =
    testList "Interop/safetensors" [
        test "a PyTorch field's safetensors state_dict loads into the equivalent block; its f(x) is PyTorch's" {
            use block = new NeuralOdeModel(field (), Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
            let loaded = SafetensorsWeights.load fixture block [ "vf.", "vector_field." ] true
            Expect.equal loaded.Length 4 "four tensors"
            let json = Text.Json.JsonDocument.Parse(File.ReadAllText expected)
            let x = [| for v in json.RootElement.GetProperty("x").EnumerateArray() -> float32 (v.GetDouble()) |]
            let f = [| for v in json.RootElement.GetProperty("f").EnumerateArray() -> v.GetDouble() |]
            use input = torch.tensor(x).reshape(1L, 2L)
            use y = block.VectorField.forward input
            let got = Tensors.toArray y
            for i in 0 .. 1 do Expect.floatClose { absolute = 1e-6; relative = 1e-5 } got[i] f[i] $"f(x)[{i}]"
        }
        test "ours saves for PyTorch and loads back: same names after renaming, same values" {
            use a = new NeuralOdeModel(field (), Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
            Tensors.initialize 71 0.5 a
            let path = temporary "saved.safetensors"
            SafetensorsWeights.save path a [ "vector_field.", "vf." ]
            use b = new NeuralOdeModel(field (), Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
            SafetensorsWeights.load path b [ "vf.", "vector_field." ] true |> ignore
            for p, q in Seq.zip (a.parameters()) (b.parameters()) do
                Expect.sequenceEqual (Tensors.toArray q) (Tensors.toArray p) "same values"
            File.Delete path
        }
        test "names that do not match, truncated and crafted files, and pickles get named errors" {
            use block = new NeuralOdeModel(field (), Solvers.rk4, StepControl.steps 4, [| 0.0; 1.0 |])
            let e = Raises.raises<ArgumentException> (fun () -> SafetensorsWeights.load fixture block [] true |> ignore)
            Expect.stringContains e.Message "missing" "lists what is missing"
            let bytes = File.ReadAllBytes fixture
            let bad (name: string) (content: byte[]) =
                let path = temporary "bad.safetensors"
                File.WriteAllBytes(path, content)
                let e = Raises.raises<InvalidDataException> (fun () -> SafetensorsWeights.load path block [ "vf.", "vector_field." ] true |> ignore)
                Expect.stringContains e.Message path $"{name}: names the file"
                File.Delete path
            bad "truncated" bytes[.. bytes.Length - 9]
            bad "huge header length" (Array.append (BitConverter.GetBytes(Int64.MaxValue)) bytes[8..])
            let header = Text.Encoding.UTF8.GetString(bytes, 8, int (BitConverter.ToInt64(bytes, 0)))
            let crafted = header.Replace("\"data_offsets\":[0,32]", "\"data_offsets\":[0,99999]")
            let craftedBytes = Text.Encoding.UTF8.GetBytes crafted
            bad "offsets beyond the data" (Array.concat [ BitConverter.GetBytes(int64 craftedBytes.Length); craftedBytes; bytes[8 + header.Length ..] ])
            bad "not JSON" (Array.concat [ BitConverter.GetBytes(4L); "{{{{"B; bytes ])
            let pickle = temporary "weights.pt"
            File.WriteAllBytes(pickle, [| 0x80uy; 0x02uy |])
            let e2 = Raises.raises<NotSupportedException> (fun () -> SafetensorsWeights.load pickle block [] true |> ignore)
            Expect.stringContains e2.Message "execute code" "says why"
            File.Delete pickle
        }
        test "a shape whose byte count overflows 64 bits is refused, naming the file and the tensor" {
            use block = Linear(2L, 2L)
            // 2^32 × 2^32 × 4 bytes wraps to 0: the offsets [0, 0] matched before the product was checked.
            let path = craft """{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"""B 0
            let e = refused<InvalidDataException> block [] path
            Expect.stringContains e.Message path "names the file"
            Expect.stringContains e.Message "'w'" "names the tensor"
            Expect.stringContains e.Message "overflows" "says why"
        }
        test "a tensor name that is not UTF-8 is refused with InvalidDataException, naming the file" {
            use block = Linear(2L, 2L)
            let header = Array.concat [ "{\""B; [| 0xC3uy; 0x28uy |]; "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"B ]
            let path = craft header 4
            let e = refused<InvalidDataException> block [] path
            Expect.stringContains e.Message path "names the file"
            Expect.stringContains e.Message "UTF-8" "says why"
        }
        test "overlapping data and a name given twice are refused, naming the file and the tensors" {
            use block = Linear(2L, 2L)
            let overlap = craft """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"""B 12
            let e = refused<InvalidDataException> block [] overlap
            Expect.stringContains e.Message overlap "names the file"
            Expect.stringContains e.Message "'a'" "names the first tensor"
            Expect.stringContains e.Message "'b'" "names the second tensor"
            let twice = craft """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"""B 8
            let e2 = refused<InvalidDataException> block [] twice
            Expect.stringContains e2.Message twice "names the file"
            Expect.stringContains e2.Message "'a' is described 2 times" "names the tensor"
        }
        test "renames that map two stored names onto one model name are refused, naming both and the target" {
            use block = Linear(2L, 2L)
            let path = craft """{"x.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"y.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}"""B 32
            let e = refused<ArgumentException> block [ "x.", ""; "y.", "" ] path
            Expect.equal e.ParamName "renames" "names the argument"
            Expect.stringContains e.Message "'x.weight'" "names the first source"
            Expect.stringContains e.Message "'y.weight'" "names the second source"
            Expect.stringContains e.Message "'weight'" "names the target"
        }
    ]
