/// Conversions between tensors and float arrays for assertions.
module NeuralOde.Tests.Support.Tensors

open TorchSharp

let f64 (values: float[]) = torch.tensor(values, dtype = torch.float64)
let f64m (rows: float[][]) =
    let r, c = rows.Length, rows[0].Length
    let flat: torch.Tensor = torch.tensor(Array.concat rows, dtype = torch.float64)
    flat.reshape(int64 r, int64 c)

/// Every element as float, in row-major order.
let toArray (x: torch.Tensor) : float[] =
    use d = x.detach().to_type(torch.float64).cpu().contiguous()
    d.data<float>().ToArray()

/// Largest absolute elementwise difference.
let maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    Array.map2 (fun x y -> abs (x - y)) (toArray a) (toArray b) |> Array.max

/// ‖a − b‖ / ‖b‖ (Euclidean), guarded against a zero reference.
let relativeError (a: float[]) (b: float[]) =
    let diff = Array.map2 (fun x y -> (x - y) * (x - y)) a b |> Array.sum |> sqrt
    diff / max (b |> Array.sumBy (fun y -> y * y) |> sqrt) 1e-12

/// Least-squares slope of log(ys) against log(xs).
let logLogSlope (xs: float[]) (ys: float[]) =
    let lx, ly = Array.map log xs, Array.map log ys
    let mx, my = Array.average lx, Array.average ly
    let num = Array.map2 (fun x y -> (x - mx) * (y - my)) lx ly |> Array.sum
    let den = lx |> Array.sumBy (fun x -> (x - mx) * (x - mx))
    num / den

/// Sets every parameter of a module from a seeded generator (N(0, scale²)), independent of the global RNG, which
/// tests running in parallel would share.
let initialize (seed: int) (scale: float) (m: torch.nn.Module) =
    use g = torch.Generator(uint64 seed)
    use _ = torch.no_grad()
    for p in m.parameters() do
        use values = torch.randn(p.shape, dtype = p.dtype, generator = g)
        use scaled = values.mul(Scalar.op_Implicit scale)
        p.copy_(scaled) |> ignore
