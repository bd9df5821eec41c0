/// The measured floor of W1: the iteration's matrix products and element-wise ops at the same shapes, run as bare
/// TorchSharp kernels with no autograd graph, no solver and no module machinery. The forward is RK4 through the MLP
/// with every stage's activations kept; the backward is written out by hand (the chain rule through the MLP and
/// through RK4's stage combinations), then the same Adam step as W1. Its gradients are checked against autograd's,
/// so the floor computes what W1 computes. W1's time divided by this one is the overhead the library adds.
/// One difference in W1's favour: tanh′ takes two kernels here (mul, addcmul; TorchSharp does not expose libtorch's
/// fused tanh_backward, which autograd uses), ~16 µs per call alone (Kernels.fs), 2 per stage: the floor is up to
/// ~1 ms per iteration slower than the true kernel floor, and the ratio flatters W1 by up to ~3%.
module NeuralOde.Benchmarks.Floor

open TorchSharp
open NeuralOde.Core.Datasets

type Tensor = torch.Tensor

/// Activations of one MLP evaluation, kept for the backward: the input and the two hidden outputs (after tanh).
type private Saved = { X: Tensor; H1: Tensor; H2: Tensor }

/// W1's iteration by hand. The parameters are those of `field` (Linear, Tanh, Linear, Tanh, Linear) and `readout`.
type ManualW1(field: torch.nn.Module, readout: torch.nn.Module, steps: int, optimizer: torch.optim.Optimizer) =
    let p = field.parameters() |> Array.ofSeq
    let r = readout.parameters() |> Array.ofSeq
    // Scalars made once: the step's constants (a Scalar per op would itself be overhead the floor should not have).
    let h = 1.0 / float steps
    let sHalf, sFull, sSixth, sThird = Scalar.op_Implicit(h / 2.0), Scalar.op_Implicit h, Scalar.op_Implicit(h / 6.0), Scalar.op_Implicit(h / 3.0)
    let sMinusOne = Scalar.op_Implicit -1.0

    // Temporaries are disposed as soon as they are used, as libtorch's autograd engine frees them: kept until the
    // iteration's end they would make every allocation touch fresh pages, and the floor would be slower than W1.
    let mlp (x: Tensor) : Tensor * Saved =
        use w0 = p[0].t()
        use w2 = p[2].t()
        use w4 = p[4].t()
        use a1 = torch.addmm(p[1], x, w0, 1.0f, 1.0f)
        let h1 = a1.tanh()
        use a2 = torch.addmm(p[3], h1, w2, 1.0f, 1.0f)
        let h2 = a2.tanh()
        torch.addmm(p[5], h2, w4, 1.0f, 1.0f), { X = x; H1 = h1; H2 = h2 }

    /// dL/dx of one evaluation given dL/df (disposed here, with the evaluation's activations but its input);
    /// accumulates the parameter gradients into `grads`.
    let mlpBackward (s: Saved) (g: Tensor) (grads: Tensor[]) =
        let accumulate i (d: Tensor) =
            if isNull grads[i] then grads[i] <- d
            else
                grads[i].add_(d) |> ignore
                d.Dispose()
        let weightGradient (g: Tensor) (input: Tensor) =
            use gt = g.t()
            gt.mm(input)
        let tanhBackward (g: Tensor) (h: Tensor) =
            use gh = g.mul(h)
            torch.addcmul(g, gh, h, sMinusOne)
        accumulate 4 (weightGradient g s.H2)
        accumulate 5 (g.sum(0L))
        use gh2 = g.mm(p[4])
        g.Dispose()
        use ga2 = tanhBackward gh2 s.H2
        accumulate 2 (weightGradient ga2 s.H1)
        accumulate 3 (ga2.sum(0L))
        use gh1 = ga2.mm(p[2])
        use ga1 = tanhBackward gh1 s.H1
        accumulate 0 (weightGradient ga1 s.X)
        accumulate 1 (ga1.sum(0L))
        s.H1.Dispose()
        s.H2.Dispose()
        ga1.mm(p[0])

    /// Forward and hand-written backward; returns the loss and the gradients (field's, then readout's).
    member _.Gradients(x: Tensor, y: Tensor) =
        use _ = torch.no_grad()
        // Forward: RK4, keeping every stage's activations.
        let saved = ResizeArray<Saved[]>()
        let mutable z: Tensor = x
        for _ in 1 .. steps do
            let k1, s1 = mlp z
            let k2, s2 = mlp (z.add(k1, sHalf))
            let k3, s3 = mlp (z.add(k2, sHalf))
            let k4, s4 = mlp (z.add(k3, sFull))
            saved.Add [| s1; s2; s3; s4 |]
            z <- z.add(k1, sSixth).add_(k2, sThird).add_(k3, sThird).add_(k4, sSixth)
            for k in [ k1; k2; k3; k4 ] do k.Dispose()
        // Readout and cross-entropy.
        use wr = r[0].t()
        use logits = torch.addmm(r[1], z, wr, 1.0f, 1.0f)
        let loss = torch.nn.functional.cross_entropy(logits, y)
        use oneHot = torch.nn.functional.one_hot(y, 2L)
        use gLogits: Tensor = logits.softmax(1L).sub_(oneHot).div_(torch.tensor(float (y.shape[0]), dtype = logits.dtype))
        let rGrads = [| (use t = gLogits.t() in t.mm(z)); gLogits.sum(0L) |]
        let mutable g: Tensor = gLogits.mm(r[0])
        // Backward through the steps in reverse; each step's output state is no longer needed after its own step.
        let grads = Array.zeroCreate<Tensor> p.Length
        for n in steps - 1 .. -1 .. 0 do
            let s = saved[n]
            let gy4 = mlpBackward s[3] (g.mul(sSixth)) grads
            let gy3 = mlpBackward s[2] (g.mul(sThird).add_(gy4, sFull)) grads
            let gy2 = mlpBackward s[1] (g.mul(sThird).add_(gy3, sHalf)) grads
            let gy1 = mlpBackward s[0] (g.mul(sSixth).add_(gy2, sHalf)) grads
            let next = g.add(gy4).add_(gy3).add_(gy2).add_(gy1)
            for t in [ g; gy4; gy3; gy2; gy1 ] do t.Dispose()
            // The stage inputs: s[0].X is the step's start state (x itself for the first step, owned by the caller).
            for i in 1 .. 3 do s[i].X.Dispose()
            if n > 0 then s[0].X.Dispose()
            g <- next
        z.Dispose()
        g.Dispose()
        loss, Array.append grads rGrads

    /// One iteration: the gradients by hand, handed to the optimizer.
    member m.Step(x: Tensor, y: Tensor) =
        let loss, grads = m.Gradients(x, y)
        Array.iter2 (fun (param: Modules.Parameter) (grad: Tensor) -> param.grad <- grad) (Array.append p r) grads
        optimizer.step() |> ignore
        loss.ToDouble()

    interface System.IDisposable with
        member _.Dispose() = for s in [ sHalf; sFull; sSixth; sThird; sMinusOne ] do s.Dispose()
