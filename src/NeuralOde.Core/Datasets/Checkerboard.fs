/// The 2-D checkerboard density, FFJORD's toy (Grathwohl et al. 2019, `toy_data.py` "checkerboard"): uniform on the
/// "black" squares of a 4 × 4 board of 2 × 2 squares covering [−4, 4)², those with ⌊x₁/2⌋ + ⌊x₂/2⌋ even — eight
/// squares, density 1/32 on each. As FFJORD: x₁' ~ U[−2, 2), x₂' ~ U[0, 1) − 2B (B ~ Bernoulli(½)) shifted up by
/// ⌊x₁'⌋ mod 2, and x = 2·(x₁', x₂').
module NeuralOde.Core.Datasets.Checkerboard

open TorchSharp
open NeuralOde.Core.Internal

/// `n` samples [n; 2] drawn with `generator`.
let sample (n: int) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.countAtLeast 1 "n" n
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    let size = [| int64 n |]
    let x1 = TensorOps.addConstant (TensorOps.scale (torch.rand(size, dtype = torch.float64, generator = generator)) 4.0) -2.0
    let u = torch.rand(size, dtype = torch.float64, generator = generator)
    use half = Scalar.op_Implicit 0.5
    let lowerRow = torch.rand(size, dtype = torch.float64, generator = generator).lt(half).to_type(torch.float64)
    use two = Scalar.op_Implicit 2.0
    let x2 = TensorOps.addScaled u lowerRow -2.0 |> fun t -> TensorOps.plus t (x1.floor().remainder(two))
    let samples: torch.Tensor = torch.stack(([| x1; x2 |]: torch.Tensor[]), 1L)
    (TensorOps.scale samples 2.0).to_type(dtype).MoveToOuterDisposeScope()
