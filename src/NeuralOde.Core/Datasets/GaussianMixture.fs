/// An equally weighted mixture of k isotropic Gaussians N(μ_j, σ² I), j = 1..k: by default in 2-D with the means
/// evenly spaced on a circle of radius r (FFJORD's "8gaussians" toy density, Grathwohl et al. 2019, before its
/// rescaling by 1/√2), or with means given. Its exact log-density is a target for continuous normalising flows.
module NeuralOde.Core.Datasets.GaussianMixture

open System
open TorchSharp
open NeuralOde.Core.Internal

/// k isotropic Gaussians of common standard deviation `Sigma`, weight 1/k each, with means the rows of `Means` [k; d].
[<Sealed>]
type Mixture internal (means: float[,], sigma: float) =
    /// The component means, one row each (a copy).
    member _.Means = Array2D.copy means
    /// The common standard deviation σ of every component.
    member _.Sigma = sigma
    /// Number of components k.
    member _.Components = Array2D.length1 means
    /// Dimension d of the samples.
    member _.Dimension = Array2D.length2 means
    /// The means as a [k; d] tensor.
    member internal _.MeansTensor(dtype: torch.ScalarType, device: torch.Device) =
        let flat = Array.init means.Length (fun i -> means[i / Array2D.length2 means, i % Array2D.length2 means])
        torch.tensor(flat, dtype = dtype, device = device).reshape(int64 (Array2D.length1 means), int64 (Array2D.length2 means))
    override _.ToString() = $"GaussianMixture(k = {Array2D.length1 means}, d = {Array2D.length2 means}, sigma = {sigma})"

/// The mixture with means the rows of `means` [k; d] (k, d ≥ 1, finite) and standard deviation `sigma` (> 0).
let withMeans (means: float[,]) (sigma: float) =
    if isNull means then raise (ArgumentNullException("means"))
    if means.Length = 0 then
        let shape = $"[{Array2D.length1 means}, {Array2D.length2 means}]"
        raise (ArgumentOutOfRangeException("means", shape, $"means must have at least one row (a component) and one column (a dimension); got shape {shape}."))
    means |> Array2D.iteri (fun i j m ->
        if Double.IsNaN m || Double.IsInfinity m then
            raise (ArgumentOutOfRangeException("means", m, $"means[{i}, {j}] is {m}; every mean must be finite.")))
    Guard.positiveFinite "sigma" sigma
    Mixture(Array2D.copy means, sigma)

/// `components` Gaussians in 2-D with means r·(cos 2πj/k, sin 2πj/k), j = 0..k−1, and standard deviation `sigma`.
let onCircle (components: int) (radius: float) (sigma: float) =
    Guard.positiveCount "components" components
    if components > 100_000 then
        raise (ArgumentOutOfRangeException("components", components, $"components must be at most 100000; got {components}."))
    Guard.positiveFinite "radius" radius
    Guard.positiveFinite "sigma" sigma
    let means = Array2D.init components 2 (fun j c ->
        let angle = 2.0 * Math.PI * float j / float components
        radius * (if c = 0 then cos angle else sin angle))
    Mixture(means, sigma)

/// `n` samples as (inputs [n; d], labels [n] int64 — the component each was drawn from, uniformly), drawn with
/// `generator`.
let sample (mixture: Mixture) (n: int) (dtype: torch.ScalarType) (generator: torch.Generator) =
    if isNull (box mixture) then raise (ArgumentNullException("mixture"))
    DatasetChecks.countAtLeast 1 "n" n
    DatasetChecks.floating "dtype" dtype
    DatasetChecks.generator "generator" generator
    use _ = torch.NewDisposeScope()
    let k = mixture.Components
    let u = torch.rand([| int64 n |], dtype = torch.float64, generator = generator)
    use top = Scalar.op_Implicit (float (k - 1))
    let labels = (TensorOps.scale u (float k)).floor().clamp_max(top).to_type(torch.int64)
    let centres = mixture.MeansTensor(torch.float64, torch.CPU).index_select(0L, labels)
    let jitter = torch.randn([| int64 n; int64 mixture.Dimension |], dtype = torch.float64, generator = generator)
    let inputs = TensorOps.addScaled centres jitter mixture.Sigma
    inputs.to_type(dtype).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope()

/// The exact log-density log p(x) = logsumexp_j(−‖x − μ_j‖² / 2σ²) − log k − (d/2)·log(2πσ²) of each row of `x`
/// [N; d], as a tensor [N] of x's dtype on x's device, differentiable with respect to x.
let logDensity (mixture: Mixture) (x: torch.Tensor) : torch.Tensor =
    if isNull (box mixture) then raise (ArgumentNullException("mixture"))
    if isNull x then raise (ArgumentNullException("x"))
    if x.dim() <> 2L || x.shape[1] <> int64 mixture.Dimension then
        let shape = String.Join(", ", x.shape)
        raise (ArgumentException($"x must have shape [N, {mixture.Dimension}] (one point per row); got [{shape}].", "x"))
    if not (x.is_floating_point()) then
        raise (ArgumentException($"x must be a floating-point tensor; got {x.dtype}.", "x"))
    use _ = torch.NewDisposeScope()
    let sigma = mixture.Sigma
    let d = float mixture.Dimension
    let means = mixture.MeansTensor(x.dtype, x.device)
    let squared = x.unsqueeze(1L).sub(means.unsqueeze(0L)).square().sum(2L)
    let logKernel = TensorOps.scale squared (-1.0 / (2.0 * sigma * sigma))
    let normaliser = -log (float mixture.Components) - 0.5 * d * log (2.0 * Math.PI * sigma * sigma)
    (TensorOps.addConstant (logKernel.logsumexp(1L)) normaliser).MoveToOuterDisposeScope()
