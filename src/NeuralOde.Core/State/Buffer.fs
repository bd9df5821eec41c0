/// Host buffers: a pinned managed array (float32 or float64) and a tensor over the same memory, so that SIMD loops and
/// libtorch's matrix products work on one storage without copies; and the element-wise loops on them.
module internal NeuralOde.Core.State.Buffers

open System
open System.Numerics
open System.Runtime.InteropServices
open TorchSharp

type Tensor = torch.Tensor

/// A row-major rows × cols buffer: a managed array (pinned) and a tensor over the same memory.
type Buffer =
    { /// float32[] or float[].
      Data: Array
      /// The rows × cols tensor sharing Data's memory.
      Tensor: Tensor
      Rows: int
      Cols: int }
    member b.Single = b.Data :?> float32[]
    member b.Double = b.Data :?> float[]
    member b.Length = b.Rows * b.Cols
    member b.Span = Span<float32>(b.Single, 0, b.Rows * b.Cols)
    /// Entry i (row-major) as a float, whatever the dtype; for the host-side work on small buffers.
    member b.Item
        with get (i: int) =
            match b.Data with
            | :? (float32[]) as a -> float a[i]
            | a -> (a :?> float[])[i]
        and set (i: int) (v: float) =
            match b.Data with
            | :? (float32[]) as a -> a[i] <- float32 v
            | a -> (a :?> float[])[i] <- v

/// A buffer of the dtype (float32 or float64), uninitialised, owned by no dispose scope and made without grad mode.
let buffer (dtype: torch.ScalarType) (rows: int) (cols: int) : Buffer =
    let n = max 1 (rows * cols)
    let data: Array =
        if dtype = torch.float32 then GC.AllocateUninitializedArray<float32>(n, pinned = true)
        else GC.AllocateUninitializedArray<float>(n, pinned = true)
    use _ = torch.no_grad()
    use flat = torch.frombuffer(data, dtype)
    use used = flat.narrow(0L, 0L, int64 (rows * cols))
    let view = used.view(int64 rows, int64 cols)
    view.DetachFromDisposeScope() |> ignore
    { Data = data; Tensor = view; Rows = rows; Cols = cols }

/// Copies `count` entries of a buffer into another of the same dtype (at offsets).
let copy (source: Buffer) (sourceOffset: int) (target: Buffer) (targetOffset: int) (count: int) =
    Array.Copy(source.Data, sourceOffset, target.Data, targetOffset, count)

let width = Vector<float32>.Count
let private width64 = Vector<float>.Count

/// acc[0 .. n) += c · x[0 .. n) (float32, SIMD).
let inline axpy (acc: Span<float32>) (c: float32) (x: ReadOnlySpan<float32>) =
    let av = MemoryMarshal.Cast<float32, Vector<float32>>(acc)
    let xv = MemoryMarshal.Cast<float32, Vector<float32>>(x)
    let cv = Vector<float32>(c)
    for i in 0 .. av.Length - 1 do av[i] <- Vector.FusedMultiplyAdd(cv, xv[i], av[i])
    for i in av.Length * width .. acc.Length - 1 do acc[i] <- acc[i] + c * x[i]

/// acc[0 .. n) += c · x[0 .. n) (float64, SIMD).
let axpy64 (acc: Span<float>) (c: float) (x: ReadOnlySpan<float>) =
    let av = MemoryMarshal.Cast<float, Vector<float>>(acc)
    let xv = MemoryMarshal.Cast<float, Vector<float>>(x)
    let cv = Vector<float>(c)
    for i in 0 .. av.Length - 1 do av[i] <- av[i] + cv * xv[i]
    for i in av.Length * width64 .. acc.Length - 1 do acc[i] <- acc[i] + c * x[i]

/// Σ a[i] b[i] (float32, SIMD).
let inline dot (a: ReadOnlySpan<float32>) (b: ReadOnlySpan<float32>) =
    let av = MemoryMarshal.Cast<float32, Vector<float32>>(a)
    let bv = MemoryMarshal.Cast<float32, Vector<float32>>(b)
    let mutable acc = Vector<float32>.Zero
    for i in 0 .. av.Length - 1 do acc <- Vector.FusedMultiplyAdd(av[i], bv[i], acc)
    let mutable s = Vector.Sum acc
    for i in av.Length * width .. a.Length - 1 do s <- s + a[i] * b[i]
    s

/// target = y + h Σ_j c_j ks_j over the j with c_j ≠ 0 (y may be null: zeros).
let combineInto (y: Buffer) (h: float) (coefficients: float[]) (ks: Buffer[]) (target: Buffer) =
    let n = target.Length
    match target.Data with
    | :? (float32[]) as t ->
        let os = Span<float32>(t, 0, n)
        if obj.ReferenceEquals(y, null) then os.Clear() else Span<float32>(y.Single, 0, n).CopyTo os
        for j in 0 .. coefficients.Length - 1 do
            if coefficients[j] <> 0.0 then axpy os (float32 (h * coefficients[j])) (ReadOnlySpan<float32>(ks[j].Single, 0, n))
    | t ->
        let os = Span<float>(t :?> float[], 0, n)
        if obj.ReferenceEquals(y, null) then os.Clear() else Span<float>(y.Double, 0, n).CopyTo os
        for j in 0 .. coefficients.Length - 1 do
            if coefficients[j] <> 0.0 then axpy64 os (h * coefficients[j]) (ReadOnlySpan<float>(ks[j].Double, 0, n))

/// target[0 .. count) += c·x[0 .. count).
let addScaledPrefix (target: Buffer) (c: float) (x: Buffer) (count: int) =
    match target.Data with
    | :? (float32[]) as t -> axpy (Span<float32>(t, 0, count)) (float32 c) (ReadOnlySpan<float32>(x.Single, 0, count))
    | t -> axpy64 (Span<float>(t :?> float[], 0, count)) c (ReadOnlySpan<float>(x.Double, 0, count))

/// Host copies of a buffer's first `count` entries (a snapshot), and back.
let snapshot (b: Buffer) (count: int) =
    let a = Array.CreateInstance(b.Data.GetType().GetElementType(), count)
    Array.Copy(b.Data, a, count)
    a

/// target += c·x.
let addScaled (target: Buffer) (c: float) (x: Buffer) =
    match target.Data with
    | :? (float32[]) as t -> axpy (Span<float32>(t, 0, target.Length)) (float32 c) (ReadOnlySpan<float32>(x.Single, 0, target.Length))
    | t -> axpy64 (Span<float>(t :?> float[], 0, target.Length)) c (ReadOnlySpan<float>(x.Double, 0, target.Length))

/// target = c·x.
let scaleInto (x: Buffer) (c: float) (target: Buffer) =
    match target.Data with
    | :? (float32[]) as t ->
        let xs = ReadOnlySpan<float32>(x.Single, 0, target.Length)
        let os = Span<float32>(t, 0, target.Length)
        let xv = MemoryMarshal.Cast<float32, Vector<float32>>(xs)
        let ov = MemoryMarshal.Cast<float32, Vector<float32>>(os)
        let cv = Vector<float32>(float32 c)
        for i in 0 .. xv.Length - 1 do ov[i] <- cv * xv[i]
        for i in xv.Length * width .. xs.Length - 1 do os[i] <- float32 c * xs[i]
    | t ->
        let t = t :?> float[]
        let xs = x.Double
        for i in 0 .. target.Length - 1 do t[i] <- c * xs[i]

/// True when every entry is finite.
let allFinite (b: Buffer) =
    match b.Data with
    | :? (float32[]) as a ->
        let s = ReadOnlySpan<float32>(a, 0, b.Length)
        let v = MemoryMarshal.Cast<float32, Vector<float32>>(s)
        // x − x is 0 for finite x and NaN for ±Inf and NaN.
        let mutable acc = Vector<float32>.Zero
        for i in 0 .. v.Length - 1 do acc <- acc + (v[i] - v[i])
        let mutable ok = Vector.EqualsAll(acc, Vector<float32>.Zero)
        for i in v.Length * width .. s.Length - 1 do ok <- ok && Single.IsFinite s[i]
        ok
    | a ->
        let a = a :?> float[]
        let mutable ok = true
        for i in 0 .. b.Length - 1 do ok <- ok && Double.IsFinite a[i]
        ok
