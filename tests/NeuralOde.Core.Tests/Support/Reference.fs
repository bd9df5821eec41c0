/// Float64 reference solutions computed with MathNet.Numerics, independent of TorchSharp.
module NeuralOde.Tests.Support.Reference

open MathNet.Numerics.LinearAlgebra

/// exp(M) by scaling and squaring with a Taylor series (Moler & Van Loan 2003, "Nineteen dubious ways", method 3):
/// scale M by 2^-s until its norm is below 1/2, sum 30 Taylor terms (truncation far below float64 resolution),
/// square s times.
let expm (m: Matrix<float>) =
    let norm = m.InfinityNorm()
    let s = if norm <= 0.5 then 0 else int (ceil (log (norm / 0.5) / log 2.0))
    let a = m / (2.0 ** float s)
    let mutable term = Matrix<float>.Build.DenseIdentity(m.RowCount)
    let mutable sum = term.Clone()
    for k in 1 .. 30 do
        term <- term * a / float k
        sum <- sum + term
    for _ in 1 .. s do
        sum <- sum * sum
    sum

/// x(t) = exp(A (t − t0)) x0 for dx/dt = A x.
let linearSolution (a: float[][]) (x0: float[]) (t0: float) (t: float) =
    let am = Matrix<float>.Build.DenseOfRowArrays(a)
    (expm (am * (t - t0)) * Vector<float>.Build.DenseOfArray(x0)).ToArray()
