/// The element-wise kernels of the fused trace (FusedTrace.fs): an activation's first and second derivatives from its
/// output, products of buffers, and the row sums of the trace. SIMD (System.Numerics.Vector) in float32 and in float64.
module internal NeuralOde.Core.Fused.TraceKernels

open System
open System.Numerics
open System.Runtime.InteropServices
open NeuralOde.Core.Fused.MlpField
open NeuralOde.Core.Fused.Kernels

/// A buffer's entries as a float32 span.
let private span32 (b: Buffer) = Span<float32>(b.Data :?> float32[], 0, b.Rows * b.Cols)

/// A buffer's entries as a float64 span.
let private span64 (b: Buffer) = Span<float>(b.Data :?> float[], 0, b.Rows * b.Cols)

/// act′ and act″ at the pre-activation, written in terms of the output h (float32 or float64, one element);
/// `softplusDerivative` gives softplus′ from its output.
let inline private secondOrder (act: Activation) (one: ^T) (two: ^T) (zero: ^T) (softplusDerivative: ^T -> ^T) (positive: ^T -> bool) (h: ^T) : ^T * ^T =
    match act with
    | Tanh -> let d1 = one - h * h in d1, -two * h * d1
    | Sigmoid -> let d1 = h * (one - h) in d1, d1 * (one - two * h)
    | Relu -> (if positive h then one else zero), zero
    | Softplus -> let s = softplusDerivative h in s, s * (one - s)

/// softplus′ = 1 − e^(−y) = −expm1(−y) from the output y in float64, by Kahan's form (1 − u)·y / −log u, u = e^(−y),
/// exact to a few ulp where the subtraction alone would cancel.
let private softplusDerivative64 (y: float) =
    let u = Math.Exp(-y)
    if u = 1.0 then y else (1.0 - u) * y / -(Math.Log u)

/// D1 = act′, D2 = act″ at every entry of the layer's output h (softplus: act′ = 1 − e^(−h), the logistic of the
/// pre-activation, without cancellation for small h).
let derivatives (act: Activation) (h: Buffer) (d1: Buffer) (d2: Buffer) =
    match h.Data with
    | :? (float32[]) ->
        let hs = span32 h
        let a = span32 d1
        let b = span32 d2
        let hv = MemoryMarshal.Cast<float32, Vector<float32>>(hs)
        let av = MemoryMarshal.Cast<float32, Vector<float32>>(a)
        let bv = MemoryMarshal.Cast<float32, Vector<float32>>(b)
        let one, two = Vector<float32>.One, Vector<float32>(2.0f)
        for i in 0 .. hv.Length - 1 do
            let x = hv[i]
            match act with
            | Tanh -> (let d = one - x * x in av[i] <- d; bv[i] <- -two * x * d)
            | Sigmoid -> (let d = x * (one - x) in av[i] <- d; bv[i] <- d * (one - two * x))
            | Relu -> (av[i] <- Vector.ConditionalSelect(Vector.GreaterThan<float32>(x, Vector<float32>.Zero), one, Vector<float32>.Zero); bv[i] <- Vector<float32>.Zero)
            | Softplus -> (let s = vsoftplusDerivative x in av[i] <- s; bv[i] <- s * (one - s))
        for i in hv.Length * Vector<float32>.Count .. hs.Length - 1 do
            let p, q = secondOrder act 1.0f 2.0f 0.0f softplusDerivativeScalar (fun x -> x > 0.0f) hs[i]
            a[i] <- p
            b[i] <- q
    | _ ->
        let hs = span64 h
        let a = span64 d1
        let b = span64 d2
        for i in 0 .. hs.Length - 1 do
            let p, q = secondOrder act 1.0 2.0 0.0 softplusDerivative64 (fun x -> x > 0.0) hs[i]
            a[i] <- p
            b[i] <- q

/// out = a ⊙ b (out may be a or b).
let multiply (a: Buffer) (b: Buffer) (out: Buffer) =
    match a.Data with
    | :? (float32[]) ->
        let x = span32 a
        let y = span32 b
        let o = span32 out
        let xv = MemoryMarshal.Cast<float32, Vector<float32>>(x)
        let yv = MemoryMarshal.Cast<float32, Vector<float32>>(y)
        let ov = MemoryMarshal.Cast<float32, Vector<float32>>(o)
        for i in 0 .. xv.Length - 1 do ov[i] <- xv[i] * yv[i]
        for i in xv.Length * Vector<float32>.Count .. x.Length - 1 do o[i] <- x[i] * y[i]
    | _ ->
        let x = span64 a
        let y = span64 b
        let o = span64 out
        let xv = MemoryMarshal.Cast<float, Vector<float>>(x)
        let yv = MemoryMarshal.Cast<float, Vector<float>>(y)
        let ov = MemoryMarshal.Cast<float, Vector<float>>(o)
        for i in 0 .. xv.Length - 1 do ov[i] <- xv[i] * yv[i]
        for i in xv.Length * Vector<float>.Count .. x.Length - 1 do o[i] <- x[i] * y[i]

/// out += a ⊙ b ⊙ c.
let addProduct (out: Buffer) (a: Buffer) (b: Buffer) (c: Buffer) =
    match a.Data with
    | :? (float32[]) ->
        let x = span32 a
        let y = span32 b
        let z = span32 c
        let o = span32 out
        let xv = MemoryMarshal.Cast<float32, Vector<float32>>(x)
        let yv = MemoryMarshal.Cast<float32, Vector<float32>>(y)
        let zv = MemoryMarshal.Cast<float32, Vector<float32>>(z)
        let ov = MemoryMarshal.Cast<float32, Vector<float32>>(o)
        for i in 0 .. xv.Length - 1 do ov[i] <- Vector.FusedMultiplyAdd(xv[i] * yv[i], zv[i], ov[i])
        for i in xv.Length * Vector<float32>.Count .. x.Length - 1 do o[i] <- o[i] + x[i] * y[i] * z[i]
    | _ ->
        let x = span64 a
        let y = span64 b
        let z = span64 c
        let o = span64 out
        for i in 0 .. x.Length - 1 do o[i] <- o[i] + x[i] * y[i] * z[i]

/// target[offset + r] (+)= Σ_c e[r, c] v[r, c] for every row r (overwritten unless `accumulate`).
let rowDots (e: Buffer) (v: Buffer) (target: Array) (offset: int) (accumulate: bool) =
    let cols = e.Cols
    match e.Data, v.Data, target with
    | (:? (float32[]) as x), (:? (float32[]) as y), (:? (float32[]) as t) ->
        for r in 0 .. e.Rows - 1 do
            let mutable s = 0.0f
            for c in 0 .. cols - 1 do s <- s + x[r * cols + c] * y[r * cols + c]
            t[offset + r] <- if accumulate then t[offset + r] + s else s
    | x, y, t ->
        let x, y, t = x :?> float[], y :?> float[], t :?> float[]
        for r in 0 .. e.Rows - 1 do
            let mutable s = 0.0
            for c in 0 .. cols - 1 do s <- s + x[r * cols + c] * y[r * cols + c]
            t[offset + r] <- if accumulate then t[offset + r] + s else s

/// out[r, c] = w[offset + r] · e[r, c].
let scaleRows (w: Array) (offset: int) (e: Buffer) (out: Buffer) =
    let cols = e.Cols
    match w, e.Data, out.Data with
    | (:? (float32[]) as w), (:? (float32[]) as x), (:? (float32[]) as o) ->
        for r in 0 .. e.Rows - 1 do
            for c in 0 .. cols - 1 do o[r * cols + c] <- w[offset + r] * x[r * cols + c]
    | w, x, o ->
        let w, x, o = w :?> float[], x :?> float[], o :?> float[]
        for r in 0 .. e.Rows - 1 do
            for c in 0 .. cols - 1 do o[r * cols + c] <- w[offset + r] * x[r * cols + c]
