/// Maps a Neural ODE cannot represent because its flow is a homeomorphism isotopic to the identity: the reflection
/// φ(x) = −x (spec §6.1, §7.4) and ANODE's g_1d (Dupont et al. 2019, `Data1D` with target_flip; spec §8.2).
module NeuralOde.Core.Datasets.Reflection

open TorchSharp
open NeuralOde.Core.Internal

/// The reflection φ(x) = −x on [−1, 1]^dim: (inputs [n; dim] uniform on the cube, targets [n; dim] = −inputs),
/// drawn with `generator`.
let sample (dim: int) (n: int) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.countAtLeast 1 "dim" dim
    DatasetChecks.elements "n × dim" (int64 n) dim
    DatasetChecks.countAtLeast 1 "n" n
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    let u = torch.rand([| int64 n; int64 dim |], dtype = torch.float64, generator = generator)
    let inputs = TensorOps.addConstant (TensorOps.scale u 2.0) -1.0
    inputs.to_type(dtype).MoveToOuterDisposeScope(), inputs.neg().to_type(dtype).MoveToOuterDisposeScope()

/// ANODE's g_1d: each input is +1 or −1 with probability ½ and its target is the opposite sign, g_1d(±1) = ∓1; as
/// (inputs [n; 1], targets [n; 1]). With noise > 0, N(0, noise²) is added to the inputs only (as ANODE's
/// noise_scale): the targets stay exactly ∓1. Drawn with `generator`.
let g1d (n: int) (noise: float) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.countAtLeast 1 "n" n
    DatasetChecks.noise "noise" noise
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    use half = Scalar.op_Implicit 0.5
    let positive = torch.rand([| int64 n; 1L |], dtype = torch.float64, generator = generator).lt(half).to_type(torch.float64)
    let clean = TensorOps.addConstant (TensorOps.scale positive 2.0) -1.0
    let jitter = torch.randn([| int64 n; 1L |], dtype = torch.float64, generator = generator)
    let inputs = TensorOps.addScaled clean jitter noise
    inputs.to_type(dtype).MoveToOuterDisposeScope(), clean.neg().to_type(dtype).MoveToOuterDisposeScope()
