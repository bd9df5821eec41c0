/// Two interleaving half circles, scikit-learn's `make_moons` convention: the upper moon (cos t, sin t) and the lower
/// moon (1 − cos t, 0.5 − sin t), t evenly spaced on [0, π], plus Gaussian noise. Used for the stacked Neural ODE of
/// the depth-variant classification figure (spec §7.5).
module NeuralOde.Core.Datasets.Moons

open System
open TorchSharp
open NeuralOde.Core.Internal

/// `n` points (n ≥ 2) as (inputs [n; 2], labels [n] int64): n / 2 (rounded down) on the upper moon (label 0) followed
/// by the rest on the lower moon (label 1), each coordinate plus N(0, noise²) drawn with `generator`. As make_moons
/// with shuffle=False: the points are in class order (shuffle them, or draw batches with torch.randperm, to mix).
let sample (n: int) (noise: float) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.countAtLeast 2 "n" n
    DatasetChecks.noise "noise" noise
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    let upper = n / 2
    let lower = n - upper
    let t1 = torch.linspace(0.0, Math.PI, int64 upper, dtype = torch.float64)
    let t2 = torch.linspace(0.0, Math.PI, int64 lower, dtype = torch.float64)
    let upperMoon: torch.Tensor = torch.stack(([| t1.cos(); t1.sin() |]: torch.Tensor[]), 1L)
    let lowerMoon: torch.Tensor =
        torch.stack(([| TensorOps.addConstant (t2.cos().neg()) 1.0; TensorOps.addConstant (t2.sin().neg()) 0.5 |]: torch.Tensor[]), 1L)
    let points = torch.cat(([| upperMoon; lowerMoon |]: torch.Tensor[]), 0L)
    let jitter = torch.randn([| int64 n; 2L |], dtype = torch.float64, generator = generator)
    let inputs = TensorOps.addScaled points jitter noise
    let labels =
        torch.cat(([| torch.zeros([| int64 upper |], dtype = torch.int64); torch.ones([| int64 lower |], dtype = torch.int64) |]: torch.Tensor[]), 0L)
    inputs.to_type(dtype).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope()
