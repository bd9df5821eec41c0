/// The compiled MLP's buffers: a workspace holds every buffer one chunk of rows needs (each evaluation slot's input,
/// activations and output — one slot, or one per evaluation for the discrete adjoint's tape; the products' cotangents
/// and gradient accumulators) and the layers' weights at the current depth; a pool keeps workspaces between solves.
/// Also one evaluation and one vector–Jacobian product of the field through the kernels.
module internal NeuralOde.Core.FieldBackends.Mlp.Workspace

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.FieldBackends.Mlp.MlpLayers
open NeuralOde.Core.FieldBackends.Mlp.Kernels

/// What a workspace's buffers depend on in the layers: widths, biases, activations and Galerkin coefficient counts
/// (part of the pool's keys, so that a workspace is only reused for layers of the same layout).
let signature (layers: AffineLayer[]) =
    layers
    |> Array.map (fun l ->
        let galerkin = match l.Galerkin with Some g -> $"g{g.Coefficients.numel()}" | None -> ""
        let bias = if l.HasBias then "b" else ""
        $"{l.InFeatures}x{l.OutFeatures}{bias}{galerkin}{l.Activation}")
    |> String.concat "-"

/// The kernels for a dtype: SIMD for float32, libtorch's otherwise.
let kernelsFor (dtype: torch.ScalarType) = if dtype = torch.float32 then float32Kernels else torchKernels

/// The products' buffers: the cotangent in and out (g, ū), each hidden layer's cotangent, and the parameters' gradient
/// accumulators.
type BackwardBuffers =
    { KBar: Buffer[]
      UBar: Buffer
      G: Buffer[]
      GradW: Buffer[]
      GradB: Buffer option[]
      /// dL/dα of each Galerkin layer (row-major [(in+1)·out, m]), accumulated in float64.
      Coefficients: float[] option[] }

/// The buffers of one chunk of rows: per evaluation slot its input, its hidden activations and its output (slots are
/// added as a tape needs them); and for the products the cotangents and the parameters' gradient accumulators.
type Workspace(dtype: torch.ScalarType, rows: int, made: AffineLayer[], withBackward: bool) =
    let mutable layers = made
    let n = layers[0].InFeatures
    let depth = layers.Length
    let make r c = buffer dtype r c
    let inputs = List<Buffer>()
    let hidden = List<Buffer[]>()
    let outputs = List<Buffer>()
    let addSlot () =
        inputs.Add(make rows n)
        hidden.Add(Array.init (depth - 1) (fun l -> make rows layers[l].OutFeatures))
        outputs.Add(make rows n)
    do addSlot ()
    // Made with the rest (not when first needed, inside the backward pass, where the caller's dispose scope would own them).
    let backward =
        if not withBackward then None
        else
            Some
                { KBar = [| make rows n |]
                  UBar = make rows n
                  G = Array.init (depth - 1) (fun l -> make rows layers[l].OutFeatures)
                  GradW = layers |> Array.map (fun l -> if gradTransposed dtype l then make l.InFeatures l.OutFeatures else make l.OutFeatures l.InFeatures)
                  GradB = layers |> Array.map (fun l -> if l.HasBias then Some(make 1 l.OutFeatures) else None)
                  Coefficients = layers |> Array.map (fun l -> l.Galerkin |> Option.map (fun g -> Array.zeroCreate<float> (int (g.Coefficients.numel())))) }
    let copies =
        layers |> Array.map (fun l ->
            { Weight = make l.OutFeatures l.InFeatures
              Transposed = make l.InFeatures l.OutFeatures
              Bias = if l.HasBias then Some(make 1 l.OutFeatures) else None
              GradTransposed = gradTransposed dtype l })
    // The Galerkin layers' coefficients α on the host (row-major [(in+1)·out, m]), read once per solve.
    let alphas = layers |> Array.map (fun l -> l.Galerkin |> Option.map (fun g -> Array.zeroCreate<float> (int (g.Coefficients.numel()))))
    let galerkin = layers |> Array.exists (fun l -> l.Galerkin.IsSome)
    let scratch = Dictionary<string, IDisposable>()
    /// The evaluation slots made so far.
    member _.Slots = inputs.Count
    /// Makes slots until there are `count` (made without grad mode and owned by no dispose scope).
    member _.EnsureSlots(count: int) =
        use _ = torch.no_grad()
        while inputs.Count < count do addSlot ()
    member _.Input slot = inputs[slot]
    /// Output of layer l at the slot (the last layer's is the stage derivative k).
    member _.LayerOutput (slot: int) (l: int) = if l = depth - 1 then outputs[slot] else hidden[slot][l]
    member _.LayerInput (slot: int) (l: int) = if l = 0 then inputs[slot] else hidden[slot][l - 1]
    member _.K slot = outputs[slot]
    member _.Backward =
        match backward with
        | Some b -> b
        | None -> invalidOp "This workspace was made for a solve without a backward pass."
    member _.Copies = copies
    /// Bumped each time the pool hands the workspace to a solve: a tape kept for a second backward pass checks it.
    member val Generation = 0L with get, set
    /// Other buffers kept with the workspace under a key (the trace's): made by `make` the first time, disposed with
    /// the workspace.
    member _.Scratch<'T when 'T :> IDisposable>(key: string, make: unit -> 'T) : 'T =
        match scratch.TryGetValue key with
        | true, v -> v :?> 'T
        | _ ->
            let v = make ()
            scratch[key] <- v
            v
    /// Copies the parameters of `current` — the layers of the solve at hand, which may be other tensors of the same
    /// shapes than those the workspace was made for (a replaced parameter, another block's field) — into the kernels'
    /// buffers (a Galerkin layer's coefficients to the host), and uses their Galerkin bases from now on.
    member _.Refresh(current: AffineLayer[]) =
        layers <- current
        for l in 0 .. depth - 1 do
            let c = copies[l]
            match layers[l].Galerkin, alphas[l] with
            | Some g, Some host ->
                use d = g.Coefficients.detach()
                use flat = d.to_type(torch.float64).contiguous().view(-1L)
                flat.data<float>().CopyTo(host, 0)
            | _ ->
            c.Weight.Tensor.copy_(layers[l].Weight) |> ignore
            (use wt = layers[l].Weight.t() in c.Transposed.Tensor.copy_(wt) |> ignore)
            match c.Bias with
            | Some b -> (use b1 = layers[l].Bias.view(1L, -1L) in b.Tensor.copy_(b1) |> ignore)
            | None -> ()
    /// Sets the Galerkin layers' W, Wᵀ and b to their values at depth s: θ(s) = α ψ(s).
    member _.AtDepth(s: float) =
        if galerkin then
            for l in 0 .. depth - 1 do
                match layers[l].Galerkin, alphas[l] with
                | Some g, Some alpha ->
                    let psi = Basis.valuesAt g.Basis s
                    let m = psi.Length
                    let inF, outF = layers[l].InFeatures, layers[l].OutFeatures
                    let theta p =
                        let mutable acc = 0.0
                        for j in 0 .. m - 1 do acc <- acc + alpha[p * m + j] * psi[j]
                        acc
                    let c = copies[l]
                    for o in 0 .. outF - 1 do
                        for k in 0 .. inF - 1 do
                            let v = theta (o * inF + k)
                            c.Weight[o * inF + k] <- v
                            c.Transposed[k * outF + o] <- v
                    match c.Bias with
                    | Some b -> for o in 0 .. outF - 1 do b[o] <- theta (inF * outF + o)
                    | None -> ()
                | _ -> ()
    /// Adds a Galerkin layer's gradient of one evaluation at depth s (held in GradW and GradB) to dL/dα, and clears it:
    /// dα_{p,j} += dθ_p ψ_j(s).
    member w.FoldGalerkinGradient(l: int, s: float) =
        match layers[l].Galerkin, w.Backward.Coefficients[l] with
        | Some g, Some dAlpha ->
            let b = w.Backward
            let psi = Basis.valuesAt g.Basis s
            let m = psi.Length
            let inF, outF = layers[l].InFeatures, layers[l].OutFeatures
            let add p (v: float) = if v <> 0.0 then for j in 0 .. m - 1 do dAlpha[p * m + j] <- dAlpha[p * m + j] + v * psi[j]
            for o in 0 .. outF - 1 do
                for k in 0 .. inF - 1 do
                    add (o * inF + k) (if copies[l].GradTransposed then b.GradW[l][k * outF + o] else b.GradW[l][o * inF + k])
            match b.GradB[l] with
            | Some gb -> for o in 0 .. outF - 1 do add (inF * outF + o) gb[o]
            | None -> ()
            Array.Clear b.GradW[l].Data
            b.GradB[l] |> Option.iter (fun gb -> Array.Clear gb.Data)
        | _ -> ()
    member _.AllBuffers =
        seq {
            yield! inputs; yield! outputs
            for h in hidden do yield! h
            for c in copies do
                yield c.Weight; yield c.Transposed
                match c.Bias with Some b -> yield b | None -> ()
            match backward with
            | None -> ()
            | Some b ->
                yield! b.KBar; yield b.UBar; yield! b.G; yield! b.GradW
                for g in b.GradB do match g with Some g -> yield g | None -> () }
    interface IDisposable with
        member w.Dispose() =
            w.Generation <- -1L
            for b in w.AllBuffers do b.Tensor.Dispose()
            for v in scratch.Values do v.Dispose()
            scratch.Clear()

/// Evaluates the field at the slot's input into its output (the weights set for the stage's depth beforehand).
let evaluateSlot (kernels: IKernels) (ws: Workspace) (layers: AffineLayer[]) (slot: int) =
    for l in 0 .. layers.Length - 1 do
        kernels.Affine(ws.LayerInput slot l, layers[l], ws.Copies[l], ws.LayerOutput slot l)

/// ū = (∂f/∂u)ᵀ g at the slot's saved evaluation (at depth s), into the backward buffers' UBar; `g` is overwritten.
/// With `accumulate`, the parameters' share is added to the gradient accumulators (Galerkin layers' folded into dα).
let vectorJacobianProduct (kernels: IKernels) (ws: Workspace) (layers: AffineLayer[]) (slot: int) (s: float) (g: Buffer) (accumulate: bool) =
    let b = ws.Backward
    let mutable g = g
    for l in layers.Length - 1 .. -1 .. 0 do
        let gIn = if l = 0 then b.UBar else b.G[l - 1]
        kernels.AffineBackward(g, layers[l], ws.Copies[l], ws.LayerOutput slot l, ws.LayerInput slot l, b.GradW[l], b.GradB[l], Some gIn, accumulate)
        if accumulate then ws.FoldGalerkinGradient(l, s)
        g <- gIn

/// Clears the gradient accumulators.
let clearGradients (ws: Workspace) =
    let b = ws.Backward
    // Cleared through the arrays: TorchSharp's zero_() makes a new tensor wrapper per call.
    for g in b.GradW do Array.Clear g.Data
    for g in b.GradB do g |> Option.iter (fun g -> Array.Clear g.Data)
    for g in b.Coefficients do g |> Option.iter Array.Clear

/// The accumulated parameter gradients as new tensors, in the order of `parameters`.
let parameterGradients (ws: Workspace) (layers: AffineLayer[]) : Tensor[] =
    let b = ws.Backward
    [| for l in 0 .. layers.Length - 1 do
         match layers[l].Galerkin, b.Coefficients[l] with
         | Some g, Some dAlpha ->
             use host = torch.tensor(dAlpha, dtype = torch.float64)
             use shaped = host.view(g.Coefficients.shape)
             yield shaped.to_type(g.Coefficients.dtype)
         | _ ->
         let gw = b.GradW[l].Tensor
         yield (if ws.Copies[l].GradTransposed then (use t = gw.t() in t.contiguous()) else gw.clone())
         match b.GradB[l] with
         | Some gb -> yield (use v = gb.Tensor.view(-1L) in v.clone())
         | None -> () |]
