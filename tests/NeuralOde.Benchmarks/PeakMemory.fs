/// W4: peak memory of one forward + backward pass (batch 4096, MLP 2→256→256→2, RK4, float32) against the number
/// of steps, autograd against the adjoint, each configuration in its own process so each peak is its own.
///
/// Three readings per pass, all above the process's state just before the pass:
///   RSS        peak resident set (VmHWM): what the operating system sees;
///   native     peak bytes malloc'd and in use (glibc mallinfo2: uordblks + hblkhd), sampled before and after every
///              vector-field evaluation: libtorch's tensors, autograd graphs and TorchSharp's handles;
///   GC         peak size of the .NET heap including garbage not yet collected (GC.GetTotalMemory), sampled like
///              the native heap, the managed bytes allocated during the pass, and the number of gen-0 collections.
/// A process that has trained before starts a pass with its GC heap already grown to its allocation budget; a fresh
/// process grows it during the pass, once (every tensor op leaves a small managed wrapper to collect). So each pass
/// is measured twice: "cold" in a fresh process, and "warm" after one identical warm-up pass (the same for every
/// configuration: the adjoint with 1000 steps).
module NeuralOde.Benchmarks.PeakMemory

open System
open System.Runtime.InteropServices
open TorchSharp
open NeuralOde.Core

[<Struct; StructLayout(LayoutKind.Sequential)>]
type MallInfo2 =
    val Arena: unativeint
    val Ordblks: unativeint
    val Smblks: unativeint
    val Hblks: unativeint
    val Hblkhd: unativeint
    val Usmblks: unativeint
    val Fsmblks: unativeint
    val Uordblks: unativeint
    val Fordblks: unativeint
    val Keepcost: unativeint

[<DllImport("libc", EntryPoint = "mallinfo2")>]
extern MallInfo2 private mallinfo2()

/// Bytes malloc'd and in use now (small blocks in the arenas plus mmapped blocks), in MiB.
let nativeInUseMiB () =
    let info = mallinfo2 ()
    float (uint64 info.Uordblks + uint64 info.Hblkhd) / (1024.0 * 1024.0)

/// What one pass used above the state before it, in MiB (gen-0 collections as a count).
type Pass = { PeakRss: float; Rss: float; Native: float; GcHeap: float; GcAllocated: float; Gen0Collections: int }

let private managedMiB () = float (GC.GetTotalMemory false) / (1024.0 * 1024.0)

/// One pass (method autograd, adjoint or compiled-adjoint); `warm` first runs the warm-up pass (the same method with
/// 1000 steps for the compiled adjoint, else the adjoint with 1000 steps) in this process. Autograd and the adjoint
/// evaluate the field through a sampling module (so it runs on tensors: the compiled backend does not recognise it);
/// the compiled adjoint runs the MLP itself, sampled by a thread every 0.2 ms instead.
let pass (methodName: string) (steps: int) (warm: bool) =
    let fused = (methodName = "compiled-adjoint")
    let run (sensitivity: Sensitivity) (steps: int) (sample: unit -> unit) =
        torch.manual_seed(0L) |> ignore
        let field = Workloads.mlp 256
        let sampled = { new torch.nn.Module<torch.Tensor, torch.Tensor>("sampled") with
                          override _.forward(x) =
                              sample ()
                              let y = field.forward x
                              sample ()
                              y }
        sampled.register_module("field", field)
        use model = new NeuralOdeModel((if fused then field :> torch.nn.Module<torch.Tensor, torch.Tensor> else sampled), Solvers.rk4, StepControl.steps steps, sensitivity, [| 0.0; 1.0 |])
        use x = torch.randn([| 4096L; 2L |])
        let sampler =
            if not fused then None
            else
                let stop = new Threading.CancellationTokenSource()
                let thread = Threading.Thread((fun () -> while not stop.IsCancellationRequested do sample (); Threading.Thread.Sleep(TimeSpan.FromMilliseconds 0.2)), IsBackground = true)
                thread.Start()
                Some(stop, thread)
        use loss = model.forward(x).square().sum()
        loss.backward()
        if fused && not (model.LastStatistics.Backend.StartsWith "compiled") then failwith "the compiled adjoint did not run"
        sampler |> Option.iter (fun (stop, thread) -> stop.Cancel(); thread.Join(); stop.Dispose())
    let sensitivity = if methodName = "autograd" then Sensitivity.Autograd else Sensitivity.adjoint
    if warm then run Sensitivity.adjoint 1000 ignore
    let rssBefore = Measure.residentMiB ()
    // VmHWM is the process's high-water mark; reset it so the peak is this pass's (Linux ≥ 4.0).
    IO.File.WriteAllText("/proc/self/clear_refs", "5")
    let nativeBefore = nativeInUseMiB ()
    let managedBefore = managedMiB ()
    let allocatedBefore = GC.GetTotalAllocatedBytes false
    let gen0Before = GC.CollectionCount 0
    let mutable nativePeak = nativeBefore
    let mutable managedPeak = managedBefore
    let gate = obj ()
    let sample () =
        let native, managed = nativeInUseMiB (), managedMiB ()
        lock gate (fun () ->
            nativePeak <- max nativePeak native
            managedPeak <- max managedPeak managed)
    run sensitivity steps sample
    let peak = Measure.peakResidentMiB ()
    { PeakRss = peak
      Rss = peak - rssBefore
      Native = nativePeak - nativeBefore
      GcHeap = managedPeak - managedBefore
      GcAllocated = float (GC.GetTotalAllocatedBytes false - allocatedBefore) / (1024.0 * 1024.0)
      Gen0Collections = GC.CollectionCount 0 - gen0Before }

/// Runs every configuration in a child process (`peak --method M --steps N [--warm]`) and tabulates.
let w4 () : Report.Row list =
    let self = Diagnostics.Process.GetCurrentProcess().MainModule.FileName
    let dll = Reflection.Assembly.GetExecutingAssembly().Location
    let child (methodName: string) (steps: int) (warm: bool) =
        let args = [ dll; "peak"; "--method"; methodName; "--steps"; string steps ] @ (if warm then [ "--warm" ] else [])
        let psi = Diagnostics.ProcessStartInfo(self, args, RedirectStandardOutput = true)
        use p = Diagnostics.Process.Start psi
        let output = p.StandardOutput.ReadToEnd()
        p.WaitForExit()
        let line = output.Split('\n') |> Array.find (fun l -> l.StartsWith "pass ")
        let v = line.Split(' ') |> Array.skip 1 |> Array.map float
        { PeakRss = v[0]; Rss = v[1]; Native = v[2]; GcHeap = v[3]; GcAllocated = v[4]; Gen0Collections = int v[5] }
    let measured = Collections.Generic.Dictionary<string * int, float>()
    [ for warm in [ false; true ] do
        let state = if warm then "warm" else "cold"
        for methodName in [ "autograd"; "adjoint"; "compiled-adjoint" ] do
            for steps in (if methodName = "autograd" then [ 10; 100; 1000 ] else [ 10; 100; 1000; 3000 ]) do
                // Autograd keeps every stage's activations: project from 100 steps and skip what cannot fit.
                let projected =
                    match measured.TryGetValue((methodName, 100)) with
                    | true, at100 when methodName = "autograd" && steps > 100 -> Some(at100 * float steps / 100.0)
                    | _ -> None
                let name = $"{methodName}, {steps} steps, {state}"
                match projected with
                | Some p when p > 0.6 * Measure.availableMiB () ->
                    yield Report.value "W4" name (p / 1024.0) "GiB RSS (projected)" $"not run: more than 60%% of the {Measure.availableMiB () / 1024.0:F1} GiB available"
                | _ ->
                    let r = child methodName steps warm
                    measured[(methodName, steps)] <- r.Rss
                    printfn "  W4 %s: peak RSS %.0f MiB, RSS +%.0f MiB, native +%.0f MiB, GC heap +%.0f MiB (%.0f MiB allocated, %d gen-0 GCs)" name r.PeakRss r.Rss r.Native r.GcHeap r.GcAllocated r.Gen0Collections
                    yield Report.value "W4" $"{name}: peak process RSS" (r.PeakRss / 1024.0) "GiB" "VmHWM of the process during the pass"
                    yield Report.value "W4" $"{name}: RSS" (r.Rss / 1024.0) "GiB above the pre-pass RSS" "batch 4096, MLP 2-256-256-2, RK4, float32"
                    yield Report.value "W4" $"{name}: native heap" (r.Native / 1024.0) "GiB above the pre-pass heap" "mallinfo2 in use, sampled at every evaluation"
                    yield Report.value "W4" $"{name}: GC heap" (r.GcHeap / 1024.0) "GiB above the pre-pass heap" $"with uncollected garbage; {r.GcAllocated:F0} MiB allocated, {r.Gen0Collections} gen-0 collections during the pass" ]
