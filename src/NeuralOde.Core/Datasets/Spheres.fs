/// Concentric spheres in d dimensions (Dupont, Doucet, Teh 2019, "Augmented Neural ODEs"; our spec §8.3): the function
/// g(x) = −1 for ‖x‖ ≤ r1 and g(x) = +1 for r2 ≤ ‖x‖ ≤ r3, which no Neural ODE without augmentation can represent.
/// As in ANODE's `ConcentricSphere`, a radius in [rmin, rmax] is drawn as r = (rmax − rmin)·U^{1/d} + rmin with
/// U ~ U[0, 1), and the direction is a standard Gaussian vector normalised to unit length.
module NeuralOde.Core.Datasets.Spheres

open System
open TorchSharp
open NeuralOde.Core.Internal

/// ANODE's default radii: inner ball ‖x‖ ≤ 0.5, outer shell 1.0 ≤ ‖x‖ ≤ 1.5.
[<Literal>]
let DefaultInnerRadius = 0.5

/// Start of the outer shell by default.
[<Literal>]
let DefaultShellStart = 1.0

/// End of the outer shell by default.
[<Literal>]
let DefaultShellEnd = 1.5

/// `count` points of dimension `dim` (float64) with radii (rmax − rmin)·U^{1/d} + rmin along normalised Gaussian directions.
let private shell (dim: int) (count: int) (rmin: float) (rmax: float) (generator: torch.Generator) : torch.Tensor =
    let directions = torch.randn([| int64 count; int64 dim |], dtype = torch.float64, generator = generator)
    use tiny = Scalar.op_Implicit 1e-300
    let norms = directions.square().sum(1L, true).sqrt().clamp_min(tiny)
    let u = torch.rand([| int64 count; 1L |], dtype = torch.float64, generator = generator)
    use exponent = Scalar.op_Implicit (1.0 / float dim)
    let radii = TensorOps.addConstant (TensorOps.scale (u.pow(exponent)) (rmax - rmin)) rmin
    directions.div(norms).mul(radii)

/// `inner` points in the ball ‖x‖ ≤ r1 followed by `outer` points in the shell r2 ≤ ‖x‖ ≤ r3, all in `dim` dimensions,
/// as (inputs [inner + outer; dim], labels [inner + outer] int64 — 0 inner, 1 outer —, targets [inner + outer; 1] of
/// `dtype` — −1 inner, +1 outer, ANODE's regression targets). Drawn with `generator`, so runs are reproducible.
let sampleWithRadii (r1: float) (r2: float) (r3: float) (dim: int) (inner: int) (outer: int) (dtype: torch.ScalarType) (generator: torch.Generator) =
    DatasetChecks.countAtLeast 1 "dim" dim
    DatasetChecks.countAtLeast 1 "inner" inner
    DatasetChecks.countAtLeast 1 "outer" outer
    DatasetChecks.elements "(inner + outer) × dim" (int64 inner + int64 outer) dim
    Guard.positiveFinite "r1" r1
    Guard.positiveFinite "r2" r2
    Guard.positiveFinite "r3" r3
    if r2 <= r1 then raise (ArgumentOutOfRangeException("r2", r2, $"r2 (start of the outer shell) must exceed r1 (radius of the inner ball) = {r1}; got {r2}."))
    if r3 <= r2 then raise (ArgumentOutOfRangeException("r3", r3, $"r3 (end of the outer shell) must exceed r2 (its start) = {r2}; got {r3}."))
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    let innerPoints = shell dim inner 0.0 r1 generator
    let outerPoints = shell dim outer r2 r3 generator
    let inputs = torch.cat(([| innerPoints; outerPoints |]: torch.Tensor[]), 0L)
    let labels =
        torch.cat(([| torch.zeros([| int64 inner |], dtype = torch.int64); torch.ones([| int64 outer |], dtype = torch.int64) |]: torch.Tensor[]), 0L)
    let targets = TensorOps.addConstant (TensorOps.scale (labels.to_type(dtype)) 2.0) -1.0
    inputs.to_type(dtype).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), targets.unsqueeze(1L).MoveToOuterDisposeScope()

/// `sampleWithRadii` with ANODE's radii r1 = 0.5, r2 = 1.0, r3 = 1.5.
let sample (dim: int) (inner: int) (outer: int) (dtype: torch.ScalarType) (generator: torch.Generator) =
    sampleWithRadii DefaultInnerRadius DefaultShellStart DefaultShellEnd dim inner outer dtype generator
