/// Two interleaved spirals, after torchdyn's `generate_spirals` (v0.2.0; spec §7.5): a depth-variant classification
/// benchmark. The angle is θ = √U · 13π/3 (780°) with U ~ U[0, 1), the first spiral is (−θ cos θ, θ sin θ) and the
/// second its point reflection (θ cos θ, −θ sin θ), so ‖x‖ = θ ≤ 13π/3 ≈ 13.6 without noise. Unlike torchdyn, which
/// adds uniform noise U[0, noise) to the first spiral before reflecting it, the noise here is Gaussian N(0, noise²) on
/// every coordinate of every point, independently.
module NeuralOde.Core.Datasets.Spirals

open System
open TorchSharp
open NeuralOde.Core.Internal

/// Largest angle of the spirals: 780° = 13π/3, as torchdyn.
[<Literal>]
let MaxAngle = 13.61356816555577

/// `n` points (n even) as (inputs [n; 2], labels [n] int64): n / 2 on the first spiral (label 0) followed by n / 2 on
/// the second (label 1), drawn with `generator`.
let sample (n: int) (noise: float) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.evenCount "n" n
    DatasetChecks.noise "noise" noise
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    let half = int64 (n / 2)
    let theta = TensorOps.scale (torch.rand([| half |], dtype = torch.float64, generator = generator).sqrt()) MaxAngle
    let first: torch.Tensor = torch.stack(([| theta.cos().mul(theta).neg(); theta.sin().mul(theta) |]: torch.Tensor[]), 1L)
    let points = torch.cat(([| first; first.neg() |]: torch.Tensor[]), 0L)
    let jitter = torch.randn([| int64 n; 2L |], dtype = torch.float64, generator = generator)
    let inputs = TensorOps.addScaled points jitter noise
    let labels = torch.cat(([| torch.zeros([| half |], dtype = torch.int64); torch.ones([| half |], dtype = torch.int64) |]: torch.Tensor[]), 0L)
    inputs.to_type(dtype).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope()
