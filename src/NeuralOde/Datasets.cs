using System;
using TorchSharp;
using CoreData = NeuralOde.Core.Datasets;

namespace NeuralOde;

/// <summary>
/// Toy datasets of the Neural ODE literature, generated in code. Each random generator draws from a
/// <see cref="torch.Generator"/>: pass <c>generator</c> to draw successive batches from one stream, or leave it null and
/// the data come from a fresh generator seeded with <c>seed</c> — the same seed always gives the same data. Inputs are
/// [n, d] tensors of <c>dtype</c> (Float32 or Float64), labels int64. The points are in class order, class 0 first.
/// </summary>
/// <exception cref="ArgumentOutOfRangeException">Every method: an argument is out of range (a count below its minimum,
/// an odd count where the classes are halves, a negative or non-finite noise, a dtype other than Float32/Float64, a
/// negative seed); the exception names the argument and the value.</exception>
public static class Datasets
{
    /// <summary>
    /// Concentric annuli (spec §7.3): <paramref name="n"/> (even) points, half on the circle of radius 1 (label 1),
    /// half on the circle of radius 2 (label 0), plus Gaussian noise of standard deviation <paramref name="noise"/>.
    /// </summary>
    /// <returns>Inputs [n, 2] and labels [n] (int64).</returns>
    public static (torch.Tensor Inputs, torch.Tensor Labels) Annuli(
        int n = 1024, double noise = 0.1, torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var (inputs, labels) = Draw(seed, generator, g => CoreData.Annuli.sample(n, noise, dtype, g));
        return (inputs, labels);
    }

    /// <summary>
    /// Concentric spheres in <paramref name="dim"/> dimensions (Augmented Neural ODEs, spec §8.3):
    /// <paramref name="inner"/> points in the ball ‖x‖ ≤ r1 (label 0, target −1) followed by <paramref name="outer"/>
    /// points in the shell r2 ≤ ‖x‖ ≤ r3 (label 1, target +1). Radii are drawn as (rmax − rmin)·U^{1/d} + rmin and
    /// directions as normalised Gaussian vectors, as ANODE's <c>ConcentricSphere</c>.
    /// </summary>
    /// <returns>Inputs [inner + outer, dim], labels [inner + outer] (int64) and targets [inner + outer, 1] (±1, of
    /// <paramref name="dtype"/>).</returns>
    public static (torch.Tensor Inputs, torch.Tensor Labels, torch.Tensor Targets) Spheres(
        int dim = 2, int inner = 1000, int outer = 2000, double r1 = 0.5, double r2 = 1.0, double r3 = 1.5,
        torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var (inputs, labels, targets) = Draw(seed, generator, g => CoreData.Spheres.sampleWithRadii(r1, r2, r3, dim, inner, outer, dtype, g));
        return (inputs, labels, targets);
    }

    /// <summary>
    /// Two interleaving half circles, scikit-learn's <c>make_moons</c>: n / 2 (rounded down) points on
    /// (cos t, sin t) (label 0) and the rest on (1 − cos t, 0.5 − sin t) (label 1), t evenly spaced on [0, π], plus
    /// Gaussian noise of standard deviation <paramref name="noise"/>. Not shuffled.
    /// </summary>
    /// <returns>Inputs [n, 2] and labels [n] (int64).</returns>
    public static (torch.Tensor Inputs, torch.Tensor Labels) Moons(
        int n = 1000, double noise = 0.1, torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var (inputs, labels) = Draw(seed, generator, g => CoreData.Moons.sample(n, noise, dtype, g));
        return (inputs, labels);
    }

    /// <summary>
    /// Two interleaved spirals after torchdyn's <c>generate_spirals</c>: angle θ = √U·13π/3, n / 2 points on
    /// (−θ cos θ, θ sin θ) (label 0) and n / 2 on its reflection through the origin (label 1), plus Gaussian noise of
    /// standard deviation <paramref name="noise"/> (torchdyn adds uniform noise instead).
    /// </summary>
    /// <returns>Inputs [n, 2] and labels [n] (int64).</returns>
    public static (torch.Tensor Inputs, torch.Tensor Labels) Spirals(
        int n = 1000, double noise = 0.1, torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var (inputs, labels) = Draw(seed, generator, g => CoreData.Spirals.sample(n, noise, dtype, g));
        return (inputs, labels);
    }

    /// <summary>
    /// Samples of an equally weighted mixture of isotropic Gaussians N(μ_j, σ²I): by default
    /// <paramref name="components"/> means evenly spaced on the circle of <paramref name="radius"/> in 2-D, starting at
    /// angle 0 (FFJORD's "8gaussians" before its 1/√2 rescaling); or, when <paramref name="means"/> is given, its rows
    /// [k, d] as the means (then <paramref name="components"/> and <paramref name="radius"/> are not used).
    /// </summary>
    /// <returns>Inputs [n, d] and labels [n] (int64): the component each sample was drawn from, uniformly.</returns>
    public static (torch.Tensor Inputs, torch.Tensor Labels) GaussianMixture(
        int n = 1000, int components = 8, double radius = 4.0, double sigma = 0.5, double[,]? means = null,
        torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var mixture = Mixture(components, radius, sigma, means);
        var (inputs, labels) = Draw(seed, generator, g => CoreData.GaussianMixture.sample(mixture, n, dtype, g));
        return (inputs, labels);
    }

    /// <summary>
    /// The exact log-density log p(x) of the mixture <see cref="GaussianMixture"/> samples from (same
    /// <paramref name="components"/>, <paramref name="radius"/>, <paramref name="sigma"/> and <paramref name="means"/>)
    /// at each row of <paramref name="x"/> [N, d]: logsumexp_j(−‖x − μ_j‖²/2σ²) − log k − (d/2)·log(2πσ²).
    /// </summary>
    /// <returns>A tensor [N] of x's dtype on x's device, differentiable with respect to x.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not a floating-point [N, d] tensor.</exception>
    public static torch.Tensor GaussianMixtureLogDensity(
        torch.Tensor x, int components = 8, double radius = 4.0, double sigma = 0.5, double[,]? means = null) =>
        CoreData.GaussianMixture.logDensity(Mixture(components, radius, sigma, means), x);

    /// <summary>
    /// FFJORD's 2-D checkerboard density: uniform on the eight "black" 2 × 2 squares of [−4, 4)², those with
    /// ⌊x₁/2⌋ + ⌊x₂/2⌋ even.
    /// </summary>
    /// <returns>Samples [n, 2].</returns>
    public static torch.Tensor Checkerboard(
        int n = 1000, torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null) =>
        Draw(seed, generator, g => CoreData.Checkerboard.sample(n, dtype, g));

    /// <summary>
    /// The reflection φ(x) = −x on [−1, 1]^dim, a map no Neural ODE without augmentation represents (spec §6.1): inputs
    /// uniform on the cube, targets −inputs.
    /// </summary>
    /// <returns>Inputs [n, dim] and targets [n, dim].</returns>
    public static (torch.Tensor Inputs, torch.Tensor Targets) Reflection(
        int dim = 2, int n = 1000, torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var (inputs, targets) = Draw(seed, generator, g => CoreData.Reflection.sample(dim, n, dtype, g));
        return (inputs, targets);
    }

    /// <summary>
    /// ANODE's g_1d (spec §8.2): inputs +1 or −1 with probability ½ each, targets the opposite sign. With
    /// <paramref name="noise"/> &gt; 0, Gaussian noise of that standard deviation is added to the inputs only.
    /// </summary>
    /// <returns>Inputs [n, 1] and targets [n, 1].</returns>
    public static (torch.Tensor Inputs, torch.Tensor Targets) Reflection1D(
        int n = 500, double noise = 0.0, torch.ScalarType dtype = torch.ScalarType.Float32, long seed = 0, torch.Generator? generator = null)
    {
        var (inputs, targets) = Draw(seed, generator, g => CoreData.Reflection.g1d(n, noise, dtype, g));
        return (inputs, targets);
    }

    /// <summary>
    /// A periodic reference signal for tracking in depth (the paper's Figure 1) on <paramref name="points"/> depths
    /// evenly spaced on [0, <paramref name="depth"/>]. With <paramref name="circle"/> (the default) it has two channels,
    /// amplitude·(cos(2πfs + phase), sin(2πfs + phase)) — with the defaults, Figure 1's γ(s) = (cos 2πs, sin 2πs);
    /// otherwise one, amplitude·sin(2πfs + phase). Deterministic.
    /// </summary>
    /// <returns>Depths [points] and values [points, channels], row i the signal at depth i.</returns>
    public static (torch.Tensor Depths, torch.Tensor Values) PeriodicSignal(
        int points = 101, double depth = 1.0, double frequency = 1.0, double phase = 0.0, double amplitude = 1.0,
        bool circle = true, torch.ScalarType dtype = torch.ScalarType.Float32)
    {
        var signal = Signal(frequency, phase, amplitude, circle);
        var depths = CoreData.Periodic.depthGrid(depth, points);
        var values = CoreData.Periodic.sampled(signal, depths, dtype);
        return (torch.tensor(depths, dtype: dtype), values);
    }

    /// <summary>The value of <see cref="PeriodicSignal"/> (same parameters) at depth <paramref name="s"/>, one entry per
    /// channel: for a loss evaluated at the solver's own depths.</summary>
    public static double[] PeriodicSignalAt(
        double s, double frequency = 1.0, double phase = 0.0, double amplitude = 1.0, bool circle = true)
    {
        if (double.IsNaN(s) || double.IsInfinity(s))
            throw new ArgumentOutOfRangeException(nameof(s), s, $"s must be a finite number; got {s}.");
        return Signal(frequency, phase, amplitude, circle).Invoke(s);
    }

    static Microsoft.FSharp.Core.FSharpFunc<double, double[]> Signal(double frequency, double phase, double amplitude, bool circle) =>
        circle ? CoreData.Periodic.circle(amplitude, frequency, phase) : CoreData.Periodic.sine(amplitude, frequency, phase);

    static CoreData.GaussianMixture.Mixture Mixture(int components, double radius, double sigma, double[,]? means) =>
        means is null ? CoreData.GaussianMixture.onCircle(components, radius, sigma) : CoreData.GaussianMixture.withMeans(means, sigma);

    static T Draw<T>(long seed, torch.Generator? generator, Func<torch.Generator, T> draw)
    {
        if (generator is not null) return draw(generator);
        if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), seed, $"seed must be at least 0; got {seed}.");
        using var g = new torch.Generator((ulong)seed);
        return draw(g);
    }

    /// <summary>
    /// Images from an IDX file, the format of MNIST and Fashion-MNIST (gzip-compressed when the name ends in ".gz",
    /// as Debian's dataset-fashion-mnist ships them in /usr/share/datasets/fashion-mnist): [count, 1, rows, columns],
    /// values pixel / 255.
    /// </summary>
    /// <exception cref="System.IO.InvalidDataException">The file is not an IDX file of unsigned bytes of rank 3, or is truncated.</exception>
    public static torch.Tensor IdxImages(string path, torch.ScalarType dtype = torch.ScalarType.Float32) => CoreData.Idx.images(path, dtype);

    /// <summary>Labels [count] (int64) from an IDX file of rank 1 (gzip-compressed when the name ends in ".gz").</summary>
    /// <exception cref="System.IO.InvalidDataException">The file is not an IDX file of unsigned bytes of rank 1, or is truncated.</exception>
    public static torch.Tensor IdxLabels(string path) => CoreData.Idx.labels(path);

    /// <summary>Writes an IDX file of unsigned bytes (gzip-compressed when the name ends in ".gz"), e.g. a small fixture.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="dimensions">1 to 4 sizes, outermost first.</param>
    /// <param name="data">The values, row-major; as many as the dimensions hold.</param>
    public static void WriteIdx(string path, int[] dimensions, byte[] data) => CoreData.Idx.write(path, dimensions, data);
}
