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
    ]
