/// Concentric annuli (Massaroli et al. 2020, §7.3 of our spec; torchdyn's ToyDataset 'spheres' in 2-D): an inner
/// circle of radius 1 (label 1) and an outer circle of radius 2 (label 0), half the points each, with Gaussian noise.
module NeuralOde.Core.Datasets.Annuli

open System
open TorchSharp
open NeuralOde.Core.Internal

/// `n` points (n even) as (inputs [n; 2], labels [n] int64), drawn with `generator` so runs are reproducible.
let sample (n: int) (noise: float) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.evenCount "n" n
    DatasetChecks.noise "noise" noise
    use _ = torch.NewDisposeScope()
    let half = int64 (n / 2)
    let angles = TensorOps.scale (torch.rand([| int64 n |], dtype = torch.float64, generator = generator)) (2.0 * Math.PI)
    let radii: torch.Tensor =
        torch.cat(([| torch.ones([| half |], dtype = torch.float64); TensorOps.scale (torch.ones([| half |], dtype = torch.float64)) 2.0 |]: torch.Tensor[]), 0L)
    let points: torch.Tensor = torch.stack(([| radii.mul(angles.cos()); radii.mul(angles.sin()) |]: torch.Tensor[]), 1L)
    let jitter: torch.Tensor = torch.randn([| int64 n; 2L |], dtype = torch.float64, generator = generator)
    let noisy = TensorOps.plus points (TensorOps.scale jitter noise)
    let labels: torch.Tensor =
        torch.cat(([| torch.ones([| half |], dtype = torch.int64); torch.zeros([| half |], dtype = torch.int64) |]: torch.Tensor[]), 0L)
    noisy.to_type(dtype).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope()
