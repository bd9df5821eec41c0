/// A check that libtorch's float32 convolutions compute what they should on this CPU, and the workaround when they
/// do not: oneDNN (libtorch's "mkldnn" convolution backend) is switched off for the process, so convolutions run on
/// libtorch's own im2col + BLAS path.
///
/// Why: on some virtual machines of this project's kind (AMD EPYC family 0x1A reported as "Oxide Virtual Turin-like
/// Processor", AVX-512, whose CPUID hides the cache topology: leaf 0x8000001D returns zeros) oneDNN 3.7.1 as linked
/// into libtorch 2.10 returns wrong float32 convolutions — the input gradient of nearly every 3×3 convolution with a
/// batch of 4 or more is off by 10–100% (sometimes Inf/NaN from uninitialised memory), and the forward pass too for
/// 24 input channels. With oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) only the input gradients of convolutions
/// with fewer than 8 output channels are wrong, which is why the paper's image experiment passed there and turned
/// NaN at the default ISA. Float64 convolutions (not run by oneDNN) and the same float32 shapes with oneDNN switched
/// off agree to rounding. tests/Scripts/ConvolutionSweep.fsx reproduces the sweep.
///
/// `ensureCorrect ()` runs a handful of small convolutions (forward, input and weight gradients) in float32 against
/// float64 once per process; if any is wrong it switches oneDNN off (at::Context::setUserEnabledMkldnn, exported by
/// libtorch_cpu) and checks again. NEURALODE_ONEDNN=keep skips the workaround (the check still runs and reports),
/// NEURALODE_ONEDNN=off switches oneDNN off without checking.
module NeuralOde.Core.Native.OneDnnCheck

open System
open System.Runtime.InteropServices
open TorchSharp

/// One convolution of the check: its shape and the largest relative errors of float32 against float64.
type ConvolutionCase =
    { /// "batch × in → out channels, size², kernel k".
      Shape: string
      /// The forward pass's largest error relative to float64's largest value.
      Forward: float
      /// The input gradient's.
      InputGradient: float
      /// The weight gradient's.
      WeightGradient: float }
    /// The largest of the three.
    member c.Worst = List.max [ c.Forward; c.InputGradient; c.WeightGradient ]
    override c.ToString() =
        $"{c.Shape}: forward {c.Forward:G3}, input gradient {c.InputGradient:G3}, weight gradient {c.WeightGradient:G3} (relative to float64)"

/// What `ensureCorrect` found and did.
type OneDnnStatus =
    /// Every float32 convolution of the check agreed with float64; oneDNN stays on.
    | Correct
    /// Some were wrong with oneDNN (the worst case given); oneDNN was switched off and then every case agreed.
    | SwitchedOff of wrong: ConvolutionCase
    /// NEURALODE_ONEDNN=off: switched off without a check.
    | SwitchedOffByRequest
    /// Wrong with oneDNN, kept on because NEURALODE_ONEDNN=keep.
    | WrongButKept of wrong: ConvolutionCase
    /// Wrong with oneDNN and still wrong without it (the worst case after the switch): nothing here can fix it.
    | StillWrong of wrong: ConvolutionCase
    /// The switch is not exported by the libtorch in this process (another build); nothing was changed.
    | SwitchUnavailable of reason: string
    override s.ToString() =
        match s with
        | Correct -> "float32 convolutions agree with float64; oneDNN on"
        | SwitchedOff c -> $"oneDNN's float32 convolutions are wrong on this CPU ({c}); oneDNN switched off, convolutions now agree with float64"
        | SwitchedOffByRequest -> "oneDNN switched off (NEURALODE_ONEDNN=off)"
        | WrongButKept c -> $"oneDNN's float32 convolutions are wrong on this CPU ({c}); kept on (NEURALODE_ONEDNN=keep)"
        | StillWrong c -> $"float32 convolutions are wrong on this CPU even without oneDNN ({c})"
        | SwitchUnavailable r -> $"oneDNN could not be switched: {r}"

/// The relative error above which a float32 result counts as wrong (rounding gives ~1e-6; the failures 1e-1 to Inf).
[<Literal>]
let Tolerance = 1e-3

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private GlobalContext = delegate of unit -> nativeint

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private SetFlag = delegate of nativeint * [<MarshalAs(UnmanagedType.U1)>] enabled: bool -> unit

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private GetFlag = delegate of nativeint -> [<MarshalAs(UnmanagedType.U1)>] bool

/// at::globalContext()'s switch of oneDNN, from the libtorch_cpu this process has loaded.
type private Switches =
    { SetMkldnn: bool -> unit
      GetMkldnn: unit -> bool }

let private switches () =
    use _ = torch.zeros(1L) // makes sure TorchSharp has loaded libtorch
    match NativeBackend.loadedLibraryPath "libtorch_cpu.so" with
    | None -> Error "libtorch_cpu.so is not mapped in this process"
    | Some path ->
        let handle = NativeLibrary.Load path
        let export (name: string) =
            match NativeLibrary.TryGetExport(handle, name) with
            | true, p -> Some p
            | _ -> None
        match export "_ZN2at13globalContextEv", export "_ZN2at7Context20setUserEnabledMkldnnEb", export "_ZNK2at7Context17userEnabledMkldnnEv" with
        | Some g, Some setM, Some getM ->
            let ctx = Marshal.GetDelegateForFunctionPointer<GlobalContext>(g).Invoke()
            let setMkldnn = Marshal.GetDelegateForFunctionPointer<SetFlag> setM
            let getMkldnn = Marshal.GetDelegateForFunctionPointer<GetFlag> getM
            Ok { SetMkldnn = (fun enabled -> setMkldnn.Invoke(ctx, enabled))
                 GetMkldnn = (fun () -> getMkldnn.Invoke ctx) }
        | _ -> Error $"'{path}' does not export at::Context::setUserEnabledMkldnn"

/// Whether libtorch may use oneDNN (mkldnn) in this process; None where the flag cannot be read.
let isEnabled () =
    match switches () with
    | Ok s -> Some(s.GetMkldnn())
    | Error _ -> None

/// Switches libtorch's use of oneDNN on or off for the whole process (PyTorch's torch.backends.mkldnn.enabled).
let setEnabled (enabled: bool) =
    match switches () with
    | Ok s -> s.SetMkldnn enabled
    | Error reason -> raise (InvalidOperationException $"cannot switch oneDNN: {reason}")

let private relativeError (a: torch.Tensor) (reference: torch.Tensor) =
    use a64 = a.to_type torch.float64
    use diff = (a64 - reference).abs().nan_to_num(1e300, 1e300, 1e300)
    use scale = reference.abs().max()
    diff.max().ToDouble() / max (scale.ToDouble()) 1e-300

/// One case: a float32 3×3 (or k×k) convolution with padding and its two gradients, against float64.
let private runCase (generator: torch.Generator) (n: int64, cin: int64, cout: int64, size: int64, k: int64) =
    use _ = torch.NewDisposeScope()
    use _ = torch.enable_grad()
    let pad = [| k / 2L; k / 2L |]
    let x = torch.randn([| n; cin; size; size |], generator = generator).requires_grad_(true)
    let w = torch.randn([| cout; cin; k; k |], generator = generator).requires_grad_(true)
    let y = torch.nn.functional.conv2d(x, w, padding = pad)
    let g = torch.randn(y.shape, generator = generator)
    let grads = torch.autograd.grad([| y |], [| x; w |], [| g |])
    let x64 = x.detach().to_type(torch.float64).requires_grad_(true)
    let w64 = w.detach().to_type(torch.float64).requires_grad_(true)
    let y64 = torch.nn.functional.conv2d(x64, w64, padding = pad)
    let grads64 = torch.autograd.grad([| y64 |], [| x64; w64 |], [| g.to_type torch.float64 |])
    { Shape = $"{n} × {cin} → {cout} channels, {size}², kernel {k}"
      Forward = relativeError y y64
      InputGradient = relativeError grads[0] grads64[0]
      WeightGradient = relativeError grads[1] grads64[1] }

/// The cases: shapes that were wrong on the affected CPUs (few input or output channels, 24 input channels).
let cases = [ 4L, 1L, 3L, 5L, 3L; 4L, 3L, 24L, 8L, 3L; 4L, 24L, 8L, 5L, 3L; 8L, 8L, 8L, 6L, 3L; 4L, 16L, 1L, 6L, 3L ]

/// Runs every case on the CPU (its own seeded generator, so the global one is untouched) and returns the worst.
let check () =
    let generator = torch.Generator(20261207UL)
    try cases |> List.map (runCase generator) |> List.maxBy (fun c -> c.Worst)
    finally generator.Dispose()

let private gate = obj ()
let mutable private outcome: OneDnnStatus option = None

let private decide () =
    match (Environment.GetEnvironmentVariable "NEURALODE_ONEDNN" |> Option.ofObj |> Option.defaultValue "").Trim().ToLowerInvariant() with
    | request ->
    match switches () with
    | Error reason -> SwitchUnavailable reason
    | Ok s ->
    if request = "off" then
        s.SetMkldnn false
        SwitchedOffByRequest
    else
    let worst = check ()
    if worst.Worst <= Tolerance then Correct
    elif request = "keep" then WrongButKept worst
    else
        s.SetMkldnn false
        let after = check ()
        if after.Worst <= Tolerance then SwitchedOff worst else StillWrong after

/// Checks float32 convolutions once per process and switches oneDNN off when they are wrong (see the module's
/// comment); later calls return the first call's status. NeuralOdeModel, the trainer and the C# facade call it;
/// call it yourself before convolutions of your own that run outside them.
let ensureCorrect () : OneDnnStatus =
    lock gate (fun () ->
        match outcome with
        | Some status -> status
        | None ->
            let status = decide ()
            outcome <- Some status
            status)
