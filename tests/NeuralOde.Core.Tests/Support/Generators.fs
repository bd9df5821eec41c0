/// FsCheck generators for the property tests: random small problems built from a seed.
module NeuralOde.Tests.Support.Generators

open FsCheck
open FsCheck.FSharp
open TorchSharp
open NeuralOde.Core

/// A random smooth nonlinear problem: f(t, x) = 0.8·tanh(x W + b) + 0.1·sin(t), x0 of shape [batch; dim].
type RandomProblem =
    { Seed: int; Batch: int; Dim: int; T0: float; Length: float; Backward: bool }

    member p.T1 = if p.Backward then p.T0 - p.Length else p.T0 + p.Length
    override p.ToString() = $"seed={p.Seed} batch={p.Batch} dim={p.Dim} t0={p.T0} t1={p.T1}"

    /// The vector field and initial state, in float64.
    member p.Build() =
        let g = torch.Generator(uint64 p.Seed)
        let w = torch.randn([| int64 p.Dim; int64 p.Dim |], dtype = torch.float64, generator = g)
        let b = torch.randn([| int64 p.Dim |], dtype = torch.float64, generator = g)
        let x0 = torch.randn([| int64 p.Batch; int64 p.Dim |], dtype = torch.float64, generator = g)
        let f: VectorField =
            fun t x ->
                use z = x.matmul(w).add(b)
                use th = z.tanh()
                th.mul(Scalar.op_Implicit 0.8).add(Scalar.op_Implicit (0.1 * sin t))
        f, x0

let randomProblem =
    gen {
        let! seed = Gen.choose (0, 1_000_000)
        let! batch = Gen.choose (1, 5)
        let! dim = Gen.choose (1, 4)
        let! t0 = Gen.choose (-100, 100) |> Gen.map (fun i -> float i / 100.0)
        let! length = Gen.choose (20, 200) |> Gen.map (fun i -> float i / 100.0)
        let! backward = Gen.elements [ false; true ]
        return { Seed = seed; Batch = batch; Dim = dim; T0 = t0; Length = length; Backward = backward }
    }

type Arbitraries =
    static member RandomProblem() = Arb.fromGen randomProblem
