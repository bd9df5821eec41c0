// Reproduces the sweep behind Native/OneDnnCheck.fs: float32 convolutions (forward, input and weight gradients) of
// 360 shapes against float64, with libtorch's oneDNN on and then off. On the affected machines (AMD EPYC family 0x1A
// VMs) 51 of 360 shapes came out wrong with oneDNN at its default ISA (84 in another draw of the data), 48 with
// ONEDNN_MAX_CPU_ISA=AVX2, and none with oneDNN off.
// Run after a build: dotnet fsi tests/Scripts/ConvolutionSweep.fsx   (exits 1 if any shape is wrong with oneDNN off)
#r "../NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"

open TorchSharp
open NeuralOde.Core.Native

NativeBackend.ensureLoaded () |> ignore
torch.set_num_threads 2

let relative (a: torch.Tensor) (b: torch.Tensor) =
    use d = (a.to_type(torch.float64) - b).abs().nan_to_num(1e300, 1e300, 1e300)
    d.max().ToDouble() / max (b.abs().max().ToDouble()) 1e-300

/// Largest relative errors (forward, input gradient, weight gradient) of one float32 convolution against float64.
let case (g: torch.Generator) (n: int64) (cin: int64) (cout: int64) (size: int64) (k: int64) =
    use _ = torch.NewDisposeScope()
    let pad = [| k / 2L; k / 2L |]
    let x = torch.randn([| n; cin; size; size |], generator = g).requires_grad_(true)
    let w = torch.randn([| cout; cin; k; k |], generator = g).requires_grad_(true)
    let y = torch.nn.functional.conv2d(x, w, padding = pad)
    let gy = torch.randn(y.shape, generator = g)
    let gs = torch.autograd.grad([| y |], [| x; w |], [| gy |])
    let x64 = x.detach().to_type(torch.float64).requires_grad_(true)
    let w64 = w.detach().to_type(torch.float64).requires_grad_(true)
    let y64 = torch.nn.functional.conv2d(x64, w64, padding = pad)
    let gs64 = torch.autograd.grad([| y64 |], [| x64; w64 |], [| gy.to_type torch.float64 |])
    relative y y64, relative gs[0] gs64[0], relative gs[1] gs64[1]

let sweep (label: string) =
    use g = torch.Generator(1UL)
    let wrong =
        [ for n in [ 1L; 4L; 64L ] do
            for cin in [ 1L; 2L; 3L; 8L; 16L; 24L ] do
                for cout in [ 1L; 3L; 8L; 16L; 24L ] do
                    for size in [ 5L; 14L ] do
                        for k in [ 1L; 3L ] do
                            let f, bd, bw = case g n cin cout size k
                            if max f (max bd bw) > 1e-4 then yield $"n{n} in{cin} out{cout} {size}² k{k}: forward {f:G2}, input gradient {bd:G2}, weight gradient {bw:G2}" ]
    printfn "%s: %d of 360 shapes wrong" label wrong.Length
    for w in wrong |> List.truncate 12 do printfn "  %s" w
    wrong.Length

OneDnnCheck.setEnabled true
sweep "oneDNN on" |> ignore
OneDnnCheck.setEnabled false
exit (if sweep "oneDNN off" = 0 then 0 else 1)
