// How the fused kernels' float32 tanh (src/NeuralOde.Core/Fused/Kernels.fs) was fitted, and a check of the shipped
// coefficients. tanh(x) ≈ x P(x²) / Q(x²) on [0, 9] (odd; beyond 9 float32's tanh is ±1), P of degree 6 and Q of
// degree 3 with Q(0) = 1, fitted to the relative error: linearised least squares (x P − tanh(x) Q ≈ 0, weighted by
// 1/tanh) iterated Sanathanan–Koerner style (weights 1/|Q| of the previous fit), then Lawson reweighting toward the
// minimax fit. The variable is scaled (u = x²/81) to keep the normal equations well conditioned. Float64 fit: relative
// error ~7e-9; evaluated in float32 by Horner's rule, ~3.5e-7 (3 ulp).
// Run after a build: dotnet fsi tests/Scripts/TanhRationalFit.fsx   (exits 1 if the shipped coefficients miss 4e-7)
#r "../NeuralOde.Core.Tests/bin/Release/net10.0/MathNet.Numerics.dll"

open MathNet.Numerics.LinearAlgebra

let limit = 9.0
let scale = limit * limit
let xs = Array.append (Array.init 20000 (fun i -> limit * float (i + 1) / 20000.0)) (Array.init 200 (fun i -> 1e-6 * 10.0 ** (4.0 * float i / 199.0))) |> Array.sort
let ts = xs |> Array.map tanh
let us = xs |> Array.map (fun x -> x * x / scale)
let nP, nQ = 7, 3
let mutable w = Array.create xs.Length 1.0
let mutable p = Array.zeroCreate<float> nP
let mutable q = Array.zeroCreate<float> (nQ + 1)
let horner (c: float[]) (u: float) = Array.foldBack (fun a acc -> acc * u + a) c 0.0
for iteration in 0 .. 59 do
    let a = Matrix<float>.Build.Dense(xs.Length, nP + nQ, fun i j ->
        let r = w[i] / ts[i]
        if j < nP then r * xs[i] * us[i] ** float j else r * -ts[i] * us[i] ** float (j - nP + 1))
    let b = Vector<float>.Build.Dense(xs.Length, fun i -> w[i])
    let c = a.QR().Solve(b).ToArray()
    p <- c[0 .. nP - 1]
    q <- Array.append [| 1.0 |] c[nP ..]
    let rel = Array.init xs.Length (fun i -> xs[i] * horner p us[i] / horner q us[i] / ts[i] - 1.0)
    w <-
        if iteration < 10 then Array.init xs.Length (fun i -> 1.0 / abs (horner q us[i]))
        else
            let next = Array.init xs.Length (fun i -> w[i] * sqrt (abs rel[i] + 1e-30))
            let m = Array.max next
            next |> Array.map (fun v -> v / m)
let inZ (c: float[]) = c |> Array.mapi (fun k v -> v / scale ** float k)
let fittedP, fittedQ = inZ p, inZ q
let relativeError (pz: float[]) (qz: float[]) =
    xs |> Array.map (fun x -> let z = x * x in abs (x * horner pz z / horner qz z / tanh x - 1.0)) |> Array.max
printfn "refitted: P = %A\n          Q = %A\n  float64 relative error %.2e" fittedP fittedQ (relativeError fittedP fittedQ)

// The shipped coefficients, evaluated in float32 as the kernels do.
let shippedP = [| 9.9999999342427526e-01f; 1.3084046635324284e-01f; 3.1039969317936777e-03f; 1.1154732001890704e-05f; -2.0226933936065895e-08f; 5.2787660482808980e-11f; -8.4908000450980037e-14f |]
let shippedQ = [| 1.0f; 4.6417373750752455e-01f; 2.4495340790389650e-02f; 2.5462043803871451e-04f |]
let horner32 (c: float32[]) (z: float32) = Array.foldBack (fun a acc -> acc * z + a) c 0.0f
let worst32 =
    Array.init 1_000_000 (fun i -> float32 (limit * float (i + 1) / 1e6))
    |> Array.map (fun x -> let z = x * x in abs (float (x * horner32 shippedP z / horner32 shippedQ z) / tanh (float x) - 1.0))
    |> Array.max
printfn "shipped, float32: max relative error %.2e on (0, 9]" worst32
if worst32 > 4e-7 || relativeError fittedP fittedQ > 1e-7 then exit 1
