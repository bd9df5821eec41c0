/// The element-wise kernels of the compiled flow's trace (TraceSystem.fs): an activation's first and second derivatives from its
/// output, products of buffers, and the row sums of the trace. SIMD (System.Numerics.Vector) in float32 and in float64.
module internal NeuralOde.Core.FieldBackends.Mlp.TraceKernels

open System
open System.Numerics
open System.Runtime.InteropServices
open NeuralOde.Core.FieldBackends.Mlp.MlpLayers
open NeuralOde.Core.State.Buffers
open NeuralOde.Core.FieldBackends.Mlp.Kernels

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

/// o[i] = x[i] y[i] for i < n, by Vector<'T> and then one by one (float32 or float64).
let inline private multiplyArrays (x: 'T[]) (y: 'T[]) (o: 'T[]) (n: int) =
    let xv = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(x, 0, n))
    let yv = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(y, 0, n))
    let ov = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(o, 0, n))
    for i in 0 .. xv.Length - 1 do ov[i] <- xv[i] * yv[i]
    for i in xv.Length * Vector<'T>.Count .. n - 1 do o[i] <- x[i] * y[i]

/// out = a ⊙ b (out may be a or b).
let multiply (a: Buffer) (b: Buffer) (out: Buffer) =
    let n = a.Rows * a.Cols
    match a.Data, b.Data, out.Data with
    | (:? (float32[]) as x), (:? (float32[]) as y), (:? (float32[]) as o) -> multiplyArrays x y o n
    | x, y, o -> multiplyArrays (x :?> float[]) (y :?> float[]) (o :?> float[]) n

/// o[i] += x[i] y[i] z[i] for i < n, by Vector<'T> (`multiplyAdd p z o` = p z + o) and then one by one.
let inline private addProductArrays (multiplyAdd: Vector<'T> -> Vector<'T> -> Vector<'T> -> Vector<'T>) (o: 'T[]) (x: 'T[]) (y: 'T[]) (z: 'T[]) (n: int) =
    let xv = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(x, 0, n))
    let yv = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(y, 0, n))
    let zv = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(z, 0, n))
    let ov = MemoryMarshal.Cast<'T, Vector<'T>>(Span<'T>(o, 0, n))
    for i in 0 .. xv.Length - 1 do ov[i] <- multiplyAdd (xv[i] * yv[i]) zv[i] ov[i]
    for i in xv.Length * Vector<'T>.Count .. n - 1 do o[i] <- o[i] + x[i] * y[i] * z[i]

/// out += a ⊙ b ⊙ c.
let addProduct (out: Buffer) (a: Buffer) (b: Buffer) (c: Buffer) =
    let n = a.Rows * a.Cols
    match out.Data, a.Data, b.Data, c.Data with
    | (:? (float32[]) as o), (:? (float32[]) as x), (:? (float32[]) as y), (:? (float32[]) as z) ->
        addProductArrays (fun (p: Vector<float32>) z o -> Vector.FusedMultiplyAdd(p, z, o)) o x y z n
    | o, x, y, z -> addProductArrays (fun p z o -> o + p * z) (o :?> float[]) (x :?> float[]) (y :?> float[]) (z :?> float[]) n

/// t[offset + r] (+)= Σ_c x[r, c] y[r, c] over `rows` rows of `cols` entries.
let inline private rowDotArrays (x: ^T[]) (y: ^T[]) (t: ^T[]) (rows: int) (cols: int) (offset: int) (accumulate: bool) =
    for r in 0 .. rows - 1 do
        let mutable s = LanguagePrimitives.GenericZero< ^T >
        for c in 0 .. cols - 1 do s <- s + x[r * cols + c] * y[r * cols + c]
        t[offset + r] <- if accumulate then t[offset + r] + s else s

/// target[offset + r] (+)= Σ_c e[r, c] v[r, c] for every row r (overwritten unless `accumulate`).
let rowDots (e: Buffer) (v: Buffer) (target: Array) (offset: int) (accumulate: bool) =
    match e.Data, v.Data, target with
    | (:? (float32[]) as x), (:? (float32[]) as y), (:? (float32[]) as t) -> rowDotArrays x y t e.Rows e.Cols offset accumulate
    | x, y, t -> rowDotArrays (x :?> float[]) (y :?> float[]) (t :?> float[]) e.Rows e.Cols offset accumulate

/// o[r, c] = w[offset + r] · x[r, c] over `rows` rows of `cols` entries.
let inline private scaleRowArrays (w: ^T[]) (offset: int) (x: ^T[]) (o: ^T[]) (rows: int) (cols: int) =
    for r in 0 .. rows - 1 do
        for c in 0 .. cols - 1 do o[r * cols + c] <- w[offset + r] * x[r * cols + c]

/// out[r, c] = w[offset + r] · e[r, c].
let scaleRows (w: Array) (offset: int) (e: Buffer) (out: Buffer) =
    match w, e.Data, out.Data with
    | (:? (float32[]) as w), (:? (float32[]) as x), (:? (float32[]) as o) -> scaleRowArrays w offset x o e.Rows e.Cols
    | w, x, o -> scaleRowArrays (w :?> float[]) offset (x :?> float[]) (o :?> float[]) e.Rows e.Cols
