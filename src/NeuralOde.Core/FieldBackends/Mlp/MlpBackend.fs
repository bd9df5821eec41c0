/// The compiled MLP backend (Problem/FieldBackend.fs): a field that is a Sequential of Linear and GalLinear layers with
/// element-wise activations (MlpLayers) evaluated on host buffers by the kernels (SIMD in float32), over chunks of
/// rows side by side; and the continuous normalizing flow's augmented field [f(z); tr ∂f/∂z] on the same layers. Each
/// backend keeps its workspaces and buffer algebras between solves, so a training loop allocates nothing once warm.
namespace NeuralOde.Core.FieldBackends.Mlp

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.State
open NeuralOde.Core.FieldBackends.Mlp.MlpLayers
open NeuralOde.Core.FieldBackends.Mlp.Workspace

/// The layers of `field` for a solve from x0 (rows of its last dimension's width), or why it cannot run compiled.
module internal Eligibility =
    /// The recognised layers when x0 and every parameter are float32 or float64 on the CPU in one dtype, x0's last
    /// dimension is the field's width and every buffer (the adjoint's [x; a; μ] included) fits a .NET array.
    let layers (field: torch.nn.Module) (x0: torch.Tensor) (extraPerRow: int) : Result<AffineLayer[], string> =
        if x0.device_type <> DeviceType.CPU then Error $"the state is on {x0.device} (the compiled MLP runs on the CPU)"
        elif x0.dtype <> torch.float32 && x0.dtype <> torch.float64 then Error $"the state is {x0.dtype} (the compiled MLP takes float32 or float64)"
        elif x0.dim() < 1L || x0.numel() = 0L then Error "the state is empty or 0-dim"
        else
            match recognise field with
            | Error why -> Error why
            | Ok layers ->
                let features = int64 layers[0].InFeatures
                let widest = layers |> Array.map (fun l -> max l.InFeatures l.OutFeatures) |> Array.max
                let entries = x0.numel() / features * (features + int64 extraPerRow)
                let p = parameters layers |> Array.sumBy (fun p -> p.numel())
                if x0.shape[x0.shape.Length - 1] <> features then
                    Error $"the state's last dimension is {x0.shape[x0.shape.Length - 1]}, not the field's width {features}"
                elif parameters layers |> Array.exists (fun p -> p.dtype <> x0.dtype || p.device_type <> DeviceType.CPU) then
                    Error $"the field's parameters are not all {x0.dtype} on the CPU like the state"
                elif x0.numel() / features * int64 widest > int64 Array.MaxLength || 2L * entries + p > int64 Array.MaxLength then
                    Error "the state is too large for the host buffers"
                else Ok layers

    let unwrap (result: Result<AffineLayer[], string>) =
        match result with
        | Ok layers -> layers
        | Error why -> invalidOp $"The field cannot run compiled: {why}."

/// The compiled MLP backend of one module (FieldBackends.forModule). Thread-safe: each solve rents its own workspaces.
type internal MlpBackend(field: torch.nn.Module) =
    // Workspaces (their buffers owned by no dispose scope: State/Buffer.fs) kept across solves.
    let pool = FieldBackends.KeyedPool<Workspace>(8, fun w -> w.Generation <- w.Generation + 1L)
    let algebras = BufferAlgebraPool()
    // Per thread: another thread's next solve must not free wrappers this thread's backward pass is still handing over.
    let handed = new Threading.ThreadLocal<Collections.Generic.List<torch.Tensor>>(fun () -> Collections.Generic.List<torch.Tensor>())
    /// Workspaces for the chunks of a solve from x0 with the field's layers, refreshed from the parameters, and how to
    /// give them back.
    member _.Rent(layers: AffineLayer[], x0: torch.Tensor, threads: int) =
        let rows = int (x0.numel() / int64 layers[0].InFeatures)
        let chunks = MlpSystem.chunks layers rows threads
        let layout = $"{x0.dtype}/{signature layers}"
        let key (r: int) = $"{layout}/{r}"
        let workspaces = chunks |> Array.map (fun (_, r) -> pool.Rent(key r, fun () -> new Workspace(x0.dtype, r, layers, true)))
        use _ = torch.no_grad()
        for ws in workspaces do ws.Refresh layers
        let giveBack () = Array.iter2 (fun (_, r) ws -> pool.Return(key r, ws)) chunks workspaces
        chunks, workspaces, giveBack
    member _.Field = field
    member _.Hand(tensors: seq<torch.Tensor>) = handed.Value.AddRange(tensors |> Seq.filter (isNull >> not))
    member _.FreeHanded() =
        let list = handed.Value
        for t in list do t.Dispose()
        list.Clear()
    /// The buffer algebras of its solves (and of its flows').
    member _.Algebras = algebras
    interface ICompilingBackend with
        member _.Name = "compiled MLP"
        member _.Refusal x0 = match Eligibility.layers field x0 0 with Ok _ -> None | Error why -> Some why
        member b.Compile(x0, threads, _) =
            let layers = Eligibility.unwrap (Eligibility.layers field x0 0)
            let chunks, workspaces, giveBack = b.Rent(layers, x0, threads)
            let kernels = kernelsFor x0.dtype
            let tracked = parameters layers |> Array.map (fun p -> p.requires_grad)
            let n = int (x0.numel())
            let rows = Array.map2 (fun ws (start, count) -> MlpSystem.FieldRows(kernels, ws, layers, tracked, start, count, n) :> FieldBackends.ChunkedSystem.IRows) workspaces chunks
            new FieldBackends.ChunkedSystem.RowChunkSystem(rows, parameters layers, n, giveBack)
        member _.CanTape = true
        member _.RowChunks(x0, threads) =
            let layers = Eligibility.unwrap (Eligibility.layers field x0 0)
            let features = layers[0].InFeatures
            int64 features, MlpSystem.chunks layers (int (x0.numel() / int64 features)) threads
        member _.Algebras = algebras
        member b.Hand tensors = b.Hand tensors
        member b.FreeHanded() = b.FreeHanded()

/// The compiled backend of a continuous normalizing flow's augmented field: states [N, d + 1] (z and Δ per row),
/// f on z and the trace of ∂f/∂z by the estimator's probes (drawn from `seed`).
type internal TraceBackend(mlp: MlpBackend, trace: TraceEstimator, seed: uint64) =
    /// The z part of an augmented state, for the layers' checks.
    let zOf (y0: torch.Tensor) = y0.narrow(-1L, 0L, y0.shape[y0.shape.Length - 1] - 1L)
    interface ICompilingBackend with
        member _.Name = "compiled MLP (flow)"
        member _.Refusal y0 =
            if y0.dim() <> 2L then Some "the flow's state is not [N, d + 1]"
            else
                use z = zOf y0
                match Eligibility.layers mlp.Field z 1 with Ok _ -> None | Error why -> Some why
        member _.Compile(y0, threads, _) =
            use z = zOf y0
            let layers = Eligibility.unwrap (Eligibility.layers mlp.Field z 1)
            let chunks, workspaces, giveBack = mlp.Rent(layers, z, threads)
            TraceSystem.system layers trace seed (int y0.shape[0]) y0.dtype workspaces chunks giveBack
        member _.CanTape = false
        member _.RowChunks(y0, _) = y0.shape[y0.shape.Length - 1], [| 0, int (y0.numel() / y0.shape[y0.shape.Length - 1]) |]
        member _.Algebras = mlp.Algebras
        member _.Hand tensors = mlp.Hand tensors
        member _.FreeHanded() = mlp.FreeHanded()
