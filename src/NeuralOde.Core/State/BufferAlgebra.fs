/// The host-buffer instance of the state algebra: states are flat 1 × n buffers of one solve, rented from a pool the
/// instance keeps (a solve allocates nothing once its first steps have filled the pool), with SIMD loops for the
/// element-wise work. No autograd: the solves that use it are differentiated by the adjoints (continuous or discrete).
namespace NeuralOde.Core.State

open System
open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.State.Buffers

/// States of `length` entries of the dtype (float32 or float64).
type internal BufferAlgebra(dtype: torch.ScalarType, length: int) =
    let free = Stack<Buffer>()
    let made = List<Buffer>()
    let noScope = { new IDisposable with member _.Dispose() = () }
    let rent () =
        if free.Count > 0 then free.Pop()
        else
            let b = buffer dtype 1 length
            made.Add b
            b
    let scaledSum (count: int) (term: int -> float) =
        if count = 0 then 0.0
        else
            let mutable acc = 0.0
            for i in 0 .. count - 1 do
                let r = term i
                acc <- acc + r * r
            acc

    member _.Length = length
    member _.DType = dtype
    /// A state rented from the pool (uninitialised).
    member _.Rent() = rent ()
    /// A state holding `values`' entries (a tensor of `length` entries of this dtype).
    member _.FromTensor(values: torch.Tensor) =
        let b = rent ()
        use _ = torch.no_grad()
        use flat = values.reshape(1L, -1L)
        b.Tensor.copy_(flat) |> ignore
        b

    interface IStateAlgebra<Buffer> with
        member _.Combine(y, h, weights, ks) =
            let b = rent ()
            combineInto y h weights ks b
            b
        member _.WeightedSum(h, weights, ks) =
            let b = rent ()
            combineInto Unchecked.defaultof<Buffer> h weights ks b
            b
        member _.Linear(coefficients, states) =
            let b = rent ()
            combineInto Unchecked.defaultof<Buffer> 1.0 coefficients states b
            b
        member _.AddScaledInPlace(target, c, x) = addScaled target c x
        member _.Copy x =
            let b = rent ()
            copy x 0 b 0 length
            b
        member _.ErrorNorm(rtol, atol, err, y0, y1, channels) =
            let count = if channels < 0 then length else min channels length
            if count = 0 then 0.0
            else
                let shift = atol / rtol
                let acc =
                    match err.Data, y0.Data, y1.Data with
                    | (:? (float32[]) as e), (:? (float32[]) as a), (:? (float32[]) as b) ->
                        let s = float32 shift
                        scaledSum count (fun i -> float (e[i] / (s + MathF.Max(abs a[i], abs b[i]))))
                    | e, a, b ->
                        let e, a, b = e :?> float[], a :?> float[], b :?> float[]
                        scaledSum count (fun i -> e[i] / (shift + Math.Max(abs a[i], abs b[i])))
                sqrt acc / (rtol * sqrt (float count))
        member _.RmsScaled(x, z, y0, rtol, atol) =
            let hasZ = not (obj.ReferenceEquals(z, null))
            let acc = scaledSum length (fun i -> ((if hasZ then x[i] - z[i] else x[i]) / (abs y0[i] * rtol + atol)))
            if length = 0 then 0.0 else sqrt (acc / float length)
        member _.Dot(a, b) =
            match a.Data, b.Data with
            | (:? (float32[]) as x), (:? (float32[]) as y) -> float (dot (ReadOnlySpan<float32>(x, 0, length)) (ReadOnlySpan<float32>(y, 0, length)))
            | x, y ->
                let x, y = x :?> float[], y :?> float[]
                let mutable s = 0.0
                for i in 0 .. length - 1 do s <- s + x[i] * y[i]
                s
        member _.AllFinite x = allFinite x
        member _.CheckLater(tStart, tEnd, y1, _) = if allFinite y1 then ValueNone else ValueSome(struct (tStart, tEnd))
        member _.Release x = free.Push x
        member _.Scope() = noScope
        member _.Keep x = x

    interface IDisposable with
        member _.Dispose() =
            for b in made do b.Tensor.Dispose()
            made.Clear()
            free.Clear()

/// Buffer algebras kept between solves, by dtype and length (a compiled backend's: its solves allocate nothing once
/// warm). Thread-safe; a rented algebra belongs to one solve until returned.
type internal BufferAlgebraPool() =
    let free = Dictionary<struct (torch.ScalarType * int), Stack<BufferAlgebra>>()
    member _.Rent(dtype: torch.ScalarType, length: int) =
        let found =
            lock free (fun () ->
                match free.TryGetValue(struct (dtype, length)) with
                | true, s when s.Count > 0 -> Some(s.Pop())
                | _ -> None)
        match found with
        | Some a -> a
        | None -> new BufferAlgebra(dtype, length)
    member _.Return(a: BufferAlgebra) =
        lock free (fun () ->
            let key = struct (a.DType, a.Length)
            match free.TryGetValue key with
            | true, s -> s.Push a
            | _ ->
                let s = Stack<BufferAlgebra>()
                s.Push a
                free[key] <- s)
