/// The compiled MLP backend's kernels: every operation of an MLP field's evaluation and of its vector–Jacobian product,
/// on host buffers (State/Buffer.fs: a managed array and a tensor over the same memory). Two implementations of one interface:
/// `torchKernels` (libtorch's in-place ops, any dtype) and `float32Kernels` (float32: SIMD loops over the arrays for
/// the element-wise work and for the products with at most `thinWidth` rows or columns, where libtorch's generic
/// kernels are slowest, and libtorch's matrix product for the rest). The float32 tanh is a rational approximation
/// fitted for this library (`tests/Scripts/TanhRationalFit.fsx`; max relative error 3.6e-7 in float32,
/// checked in the tests against float64).
module internal NeuralOde.Core.FieldBackends.Mlp.Kernels

open System
open System.Numerics
open System.Runtime.InteropServices
open TorchSharp
open NeuralOde.Core.Internal
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.FieldBackends.Mlp.MlpLayers

/// Products with at most this many rows or columns in the weight run as SIMD loops in float32.
let thinWidth = 8

/// What a kernel set does. `g` buffers are overwritten (they become δ, the cotangent before the activation).
type IKernels =
    /// out = act(input Wᵀ + b), W and b read from the layer's copies (W, Wᵀ and b at the evaluation's depth).
    abstract Affine: input: Buffer * layer: AffineLayer * copies: LayerCopies * output: Buffer -> unit
    /// With g the cotangent of the layer's output `output` (overwritten by δ = g ⊙ act′): dW += δᵀ input (into
    /// `gradW`, laid out as `LayerCopies.GradTransposed` says), db += Σ_rows δ, and gIn = δ W when gIn is given.
    abstract AffineBackward:
        g: Buffer * layer: AffineLayer * copies: LayerCopies * output: Buffer * input: Buffer * gradW: Buffer * gradB: Buffer option * gIn: Buffer option * accumulateWeights: bool -> unit

/// A layer's weights at the current evaluation copied into buffers (W, Wᵀ, b), and the layout of its weight gradient.
and LayerCopies =
    { Weight: Buffer
      Transposed: Buffer
      Bias: Buffer option
      /// The weight-gradient accumulator holds dWᵀ (in × out) instead of dW: the SIMD kernel of a layer with few
      /// inputs accumulates rows of dWᵀ.
      GradTransposed: bool }

let private isThinInput (layer: AffineLayer) = layer.InFeatures <= thinWidth
let private isThinOutput (layer: AffineLayer) = layer.OutFeatures <= thinWidth

/// Whether a layer's weight gradient is accumulated transposed by the kernels of this dtype.
let gradTransposed (dtype: torch.ScalarType) (layer: AffineLayer) =
    dtype = torch.float32 && isThinInput layer && not (isThinOutput layer)

// ---------------------------------------------------------------------------------------------------------------
// libtorch's in-place ops (any dtype).

let private activateInPlace (t: Tensor) (act: Activation option) =
    match act with
    | None -> ()
    | Some Tanh -> t.tanh_() |> ignore
    | Some Sigmoid -> t.sigmoid_() |> ignore
    | Some Relu -> t.relu_() |> ignore
    | Some Softplus -> (use s = torch.nn.functional.softplus(t) in t.copy_(s) |> ignore)

/// g ⊙= act′, act′ written in terms of the activation's output y.
let private derivativeInPlace (g: Tensor) (y: Tensor) (act: Activation option) =
    match act with
    | None -> ()
    | Some Tanh -> (use d = y.square() in d.neg_().add_(TensorOps.oneScalar, TensorOps.oneScalar) |> ignore; g.mul_(d) |> ignore)
    | Some Sigmoid -> (use d = y.square() in d.neg_().add_(y, TensorOps.oneScalar) |> ignore; g.mul_(d) |> ignore)
    | Some Relu -> (use zero = Scalar.op_Implicit 0.0 in use d = y.gt(zero) in g.mul_(d) |> ignore)
    | Some Softplus -> (use d = y.neg() in d.expm1_().neg_() |> ignore; g.mul_(d) |> ignore)

let torchKernels =
    { new IKernels with
        member _.Affine(input, layer, copies, output) =
            output.Tensor.addmm_(input.Tensor, copies.Transposed.Tensor, 0.0f, 1.0f) |> ignore
            match copies.Bias with
            | Some b -> output.Tensor.add_(b.Tensor, TensorOps.oneScalar) |> ignore
            | None -> ()
            activateInPlace output.Tensor layer.Activation
        member _.AffineBackward(g, layer, copies, output, input, gradW, gradB, gIn, accumulateWeights) =
            derivativeInPlace g.Tensor output.Tensor layer.Activation
            if accumulateWeights then
                use gt = g.Tensor.t()
                gradW.Tensor.addmm_(gt, input.Tensor, 1.0f, 1.0f) |> ignore
                match gradB with
                | Some b -> (use s = g.Tensor.sum(0L, keepdim = true) in b.Tensor.add_(s, TensorOps.oneScalar) |> ignore)
                | None -> ()
            match gIn with
            | Some gi -> gi.Tensor.addmm_(g.Tensor, copies.Weight.Tensor, 0.0f, 1.0f) |> ignore
            | None -> () }


// ---------------------------------------------------------------------------------------------------------------
// float32: SIMD loops.

// tanh(x) ≈ x P(x²) / Q(x²) on |x| ≤ 9 (±1 beyond, where float32's tanh rounds to ±1).
let private p0, p1, p2, p3 = 9.9999999342427526e-01f, 1.3084046635324284e-01f, 3.1039969317936777e-03f, 1.1154732001890704e-05f
let private p4, p5, p6 = -2.0226933936065895e-08f, 5.2787660482808980e-11f, -8.4908000450980037e-14f
let private q1, q2, q3 = 4.6417373750752455e-01f, 2.4495340790389650e-02f, 2.5462043803871451e-04f
let private clampAt = 9.0f

/// The float32 rational tanh, one value.
let tanhScalar (x: float32) =
    if Single.IsNaN x then x
    else
        let x = min clampAt (max -clampAt x)
        let z = x * x
        let p = ((((((p6 * z + p5) * z + p4) * z + p3) * z + p2) * z + p1) * z + p0)
        let q = (((q3 * z + q2) * z + q1) * z + 1.0f)
        if x >= clampAt then 1.0f elif x <= -clampAt then -1.0f else x * p / q

let inline private vtanh (x: Vector<float32>) =
    // NaN propagates: Min/Max keep their first operand's NaN on x86 (the clamp puts x first).
    let x = Vector.Max(Vector.Min(x, Vector<float32>(clampAt)), Vector<float32>(-clampAt))
    let z = x * x
    let mutable p = Vector.FusedMultiplyAdd(Vector<float32>(p6), z, Vector<float32>(p5))
    p <- Vector.FusedMultiplyAdd(p, z, Vector<float32>(p4))
    p <- Vector.FusedMultiplyAdd(p, z, Vector<float32>(p3))
    p <- Vector.FusedMultiplyAdd(p, z, Vector<float32>(p2))
    p <- Vector.FusedMultiplyAdd(p, z, Vector<float32>(p1))
    p <- Vector.FusedMultiplyAdd(p, z, Vector<float32>(p0))
    let mutable q = Vector.FusedMultiplyAdd(Vector<float32>(q3), z, Vector<float32>(q2))
    q <- Vector.FusedMultiplyAdd(q, z, Vector<float32>(q1))
    q <- Vector.FusedMultiplyAdd(q, z, Vector<float32>.One)
    // |x| ≥ 9: float32's tanh is ±1 exactly (the rational is within 1 ulp of it there).
    let sign = Vector.ConditionalSelect(Vector.GreaterThan<float32>(x, Vector<float32>.Zero), Vector<float32>.One, -Vector<float32>.One)
    Vector.ConditionalSelect(Vector.GreaterThanOrEqual<float32>(Vector.Abs x, Vector<float32>(clampAt)), sign, x * p / q)

let private width = Vector<float32>.Count

/// softplus(x) = max(x, 0) + log1p(e^(−|x|)), log1p by Goldberg's exact-rounding form log(w)·u/(w − 1), w = 1 + u
/// (Goldberg 1991, "What every computer scientist should know about floating-point arithmetic", Theorem 4).
let vsoftplus (x: Vector<float32>) =
    let u = Vector.Exp(-Vector.Abs x)
    let w = Vector<float32>.One + u
    let log1p = Vector.ConditionalSelect(Vector.Equals(w, Vector<float32>.One), u, Vector.Log(w) * u / (w - Vector<float32>.One))
    Vector.Max(x, Vector<float32>.Zero) + log1p

/// softplus of one value (the same formula).
let softplusScalar (x: float32) =
    let u = MathF.Exp(-(abs x))
    let w = 1.0f + u
    max x 0.0f + (if w = 1.0f then u else MathF.Log w * u / (w - 1.0f))

/// softplus′ = 1 − e^(−y) in terms of the output y (the logistic of the input), as 2t / (1 + t) with t = tanh(y/2)
/// (the fitted tanh): no cancellation for small y, where 1 − e^(−y) would lose its digits.
let vsoftplusDerivative (y: Vector<float32>) =
    let t = vtanh (y * Vector<float32>(0.5f))
    Vector<float32>(2.0f) * t / (Vector<float32>.One + t)

/// softplus′ of one output value (the same formula).
let softplusDerivativeScalar (y: float32) =
    let t = tanhScalar (0.5f * y)
    2.0f * t / (1.0f + t)

/// tanh in place over a span (SIMD, then the tail one by one).
let tanhInPlace (s: Span<float32>) =
    let v = MemoryMarshal.Cast<float32, Vector<float32>>(s)
    for i in 0 .. v.Length - 1 do v[i] <- vtanh v[i]
    for i in v.Length * width .. s.Length - 1 do s[i] <- tanhScalar s[i]

/// Adds the bias row to every row and applies the activation, in place (SIMD).
let private biasActivate (out: Buffer) (bias: Buffer option) (act: Activation option) =
    let cols = out.Cols
    let s = out.Span
    match bias with
    | Some b ->
        let bs = ReadOnlySpan<float32>(b.Single, 0, cols)
        let bv = MemoryMarshal.Cast<float32, Vector<float32>>(bs)
        for r in 0 .. out.Rows - 1 do
            let row = s.Slice(r * cols, cols)
            let rv = MemoryMarshal.Cast<float32, Vector<float32>>(row)
            match act with
            | Some Tanh -> for i in 0 .. rv.Length - 1 do rv[i] <- vtanh (rv[i] + bv[i])
            | Some Sigmoid ->
                for i in 0 .. rv.Length - 1 do
                    rv[i] <- Vector<float32>(0.5f) + Vector<float32>(0.5f) * vtanh ((rv[i] + bv[i]) * Vector<float32>(0.5f))
            | Some Relu -> for i in 0 .. rv.Length - 1 do rv[i] <- Vector.Max(rv[i] + bv[i], Vector<float32>.Zero)
            | Some Softplus -> for i in 0 .. rv.Length - 1 do rv[i] <- vsoftplus (rv[i] + bv[i])
            | None -> for i in 0 .. rv.Length - 1 do rv[i] <- rv[i] + bv[i]
            for i in rv.Length * width .. cols - 1 do
                let x = row[i] + bs[i]
                row[i] <-
                    match act with
                    | Some Tanh -> tanhScalar x
                    | Some Sigmoid -> 0.5f + 0.5f * tanhScalar (0.5f * x)
                    | Some Relu -> max x 0.0f
                    | Some Softplus -> softplusScalar x
                    | None -> x
    | None ->
        match act with
        | Some Tanh -> tanhInPlace s
        | Some Sigmoid ->
            let v = MemoryMarshal.Cast<float32, Vector<float32>>(s)
            for i in 0 .. v.Length - 1 do v[i] <- Vector<float32>(0.5f) + Vector<float32>(0.5f) * vtanh (v[i] * Vector<float32>(0.5f))
            for i in v.Length * width .. s.Length - 1 do s[i] <- 0.5f + 0.5f * tanhScalar (0.5f * s[i])
        | Some Relu ->
            let v = MemoryMarshal.Cast<float32, Vector<float32>>(s)
            for i in 0 .. v.Length - 1 do v[i] <- Vector.Max(v[i], Vector<float32>.Zero)
            for i in v.Length * width .. s.Length - 1 do s[i] <- max s[i] 0.0f
        | Some Softplus ->
            let v = MemoryMarshal.Cast<float32, Vector<float32>>(s)
            for i in 0 .. v.Length - 1 do v[i] <- vsoftplus v[i]
            for i in v.Length * width .. s.Length - 1 do s[i] <- softplusScalar s[i]
        | None -> ()

/// g ⊙= act′(y) in place.
let private derivative (g: Buffer) (y: Buffer) (act: Activation option) =
    match act with
    | None -> ()
    | Some a ->
        let gs = g.Span
        let ys = y.Span
        let gv = MemoryMarshal.Cast<float32, Vector<float32>>(gs)
        let yv = MemoryMarshal.Cast<float32, Vector<float32>>(ys)
        match a with
        | Tanh ->
            for i in 0 .. gv.Length - 1 do gv[i] <- gv[i] * Vector.FusedMultiplyAdd(-yv[i], yv[i], Vector<float32>.One)
            for i in gv.Length * width .. gs.Length - 1 do gs[i] <- gs[i] * (1.0f - ys[i] * ys[i])
        | Sigmoid ->
            for i in 0 .. gv.Length - 1 do gv[i] <- gv[i] * Vector.FusedMultiplyAdd(-yv[i], yv[i], yv[i])
            for i in gv.Length * width .. gs.Length - 1 do gs[i] <- gs[i] * (ys[i] - ys[i] * ys[i])
        | Softplus ->
            for i in 0 .. gv.Length - 1 do gv[i] <- gv[i] * vsoftplusDerivative yv[i]
            for i in gv.Length * width .. gs.Length - 1 do gs[i] <- gs[i] * softplusDerivativeScalar ys[i]
        | _ ->
            for i in 0 .. gv.Length - 1 do
                gv[i] <- Vector.ConditionalSelect(Vector.GreaterThan<float32>(yv[i], Vector<float32>.Zero), gv[i], Vector<float32>.Zero)
            for i in gv.Length * width .. gs.Length - 1 do gs[i] <- if ys[i] > 0.0f then gs[i] else 0.0f

/// out = input Wᵀ (no bias) for a layer with few inputs: each row is a combination of Wᵀ's rows (`wt`, in × out;
/// any matrix whose rows are to be combined).
let private thinInputProduct (input: Buffer) (wt: Buffer) (out: Buffer) =
    let k, m = input.Cols, out.Cols
    let xs = input.Span
    let ws = wt.Span
    let os = out.Span
    for r in 0 .. input.Rows - 1 do
        let row = os.Slice(r * m, m)
        row.Clear()
        for j in 0 .. k - 1 do axpy row xs[r * k + j] (Span.op_Implicit (ws.Slice(j * m, m)))

/// out = input Wᵀ (no bias) for a layer with few outputs: each entry a dot product with a row of W (`w`, out × in;
/// any matrix whose rows are dotted with the input's).
let private thinOutputProduct (input: Buffer) (w: Buffer) (out: Buffer) =
    let k, m = input.Cols, out.Cols
    let xs = input.Span
    let ws = w.Span
    let os = out.Span
    for r in 0 .. input.Rows - 1 do
        let x = Span.op_Implicit (xs.Slice(r * k, k))
        for o in 0 .. m - 1 do os[r * m + o] <- dot x (Span.op_Implicit (ws.Slice(o * k, k)))

let float32Kernels =
    { new IKernels with
        member _.Affine(input, layer, copies, output) =
            if isThinOutput layer then thinOutputProduct input copies.Weight output
            elif isThinInput layer then thinInputProduct input copies.Transposed output
            else output.Tensor.addmm_(input.Tensor, copies.Transposed.Tensor, 0.0f, 1.0f) |> ignore
            biasActivate output copies.Bias layer.Activation
        member _.AffineBackward(g, layer, copies, output, input, gradW, gradB, gIn, accumulateWeights) =
            derivative g output layer.Activation
            let k, m = layer.InFeatures, layer.OutFeatures
            let gs = g.Span
            let xs = input.Span
            if accumulateWeights then
                let dw = gradW.Span
                if isThinOutput layer then
                    // dW[o, :] += δ[r, o] x[r, :]
                    for r in 0 .. g.Rows - 1 do
                        let x = Span.op_Implicit (xs.Slice(r * k, k))
                        for o in 0 .. m - 1 do axpy (dw.Slice(o * k, k)) gs[r * m + o] x
                elif isThinInput layer then
                    // dWᵀ[j, :] += x[r, j] δ[r, :]
                    for r in 0 .. g.Rows - 1 do
                        let d = Span.op_Implicit (gs.Slice(r * m, m))
                        for j in 0 .. k - 1 do axpy (dw.Slice(j * m, m)) xs[r * k + j] d
                else
                    use gt = g.Tensor.t()
                    gradW.Tensor.addmm_(gt, input.Tensor, 1.0f, 1.0f) |> ignore
                match gradB with
                | Some b ->
                    let bs = b.Span
                    for r in 0 .. g.Rows - 1 do axpy bs 1.0f (Span.op_Implicit (gs.Slice(r * m, m)))
                | None -> ()
            match gIn with
            | Some gi ->
                // gIn = δ W: the forward's thin products with W and Wᵀ in each other's place.
                if isThinOutput layer then thinInputProduct g copies.Weight gi            // gIn[r, :] = Σ_o δ[r, o] W[o, :]
                elif isThinInput layer then thinOutputProduct g copies.Transposed gi      // gIn[r, j] = δ[r, :] · Wᵀ[j, :]
                else gi.Tensor.addmm_(g.Tensor, copies.Weight.Tensor, 0.0f, 1.0f) |> ignore
            | None -> () }
