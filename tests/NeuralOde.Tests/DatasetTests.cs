using System;
using System.Linq;
using NeuralOde;
using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>The <see cref="Datasets"/> facade from C#: shapes, dtypes, seeds and generators, argument errors.</summary>
public class DatasetTests
{
    static bool Same(torch.Tensor a, torch.Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.to_type(torch.float64).sub(b.to_type(torch.float64)).abs().max().ToDouble() == 0.0;

    [Fact]
    public void EveryDatasetHasTheDocumentedShapesAndDtypes()
    {
        var (x, y) = Datasets.Annuli(n: 64);
        Assert.Equal(new long[] { 64, 2 }, x.shape);
        Assert.Equal(torch.float32, x.dtype);
        Assert.Equal(torch.int64, y.dtype);

        var (sx, sy, st) = Datasets.Spheres(dim: 3, inner: 10, outer: 30, dtype: torch.ScalarType.Float64);
        Assert.Equal(new long[] { 40, 3 }, sx.shape);
        Assert.Equal(new long[] { 40 }, sy.shape);
        Assert.Equal(new long[] { 40, 1 }, st.shape);
        Assert.Equal(torch.float64, st.dtype);

        Assert.Equal(new long[] { 101, 2 }, Datasets.Moons(n: 101).Inputs.shape);
        Assert.Equal(new long[] { 100 }, Datasets.Spirals(n: 100).Labels.shape);

        var (gx, gy) = Datasets.GaussianMixture(n: 50, components: 4);
        Assert.Equal(new long[] { 50, 2 }, gx.shape);
        Assert.True(gy.max().ToInt64() < 4);
        Assert.Equal(new long[] { 50 }, Datasets.GaussianMixtureLogDensity(gx, components: 4).shape);

        Assert.Equal(new long[] { 33, 2 }, Datasets.Checkerboard(n: 33).shape);
        Assert.Equal(new long[] { 20, 5 }, Datasets.Reflection(dim: 5, n: 20).Targets.shape);
        Assert.Equal(new long[] { 20, 1 }, Datasets.Reflection1D(n: 20).Inputs.shape);

        var (depths, values) = Datasets.PeriodicSignal(points: 11);
        Assert.Equal(new long[] { 11 }, depths.shape);
        Assert.Equal(new long[] { 11, 2 }, values.shape);
        Assert.Equal(new long[] { 11, 1 }, Datasets.PeriodicSignal(points: 11, circle: false).Values.shape);
    }

    [Fact]
    public void TheSameSeedGivesTheSameDataAndAnotherSeedOtherData()
    {
        Assert.True(Same(Datasets.Moons(seed: 3).Inputs, Datasets.Moons(seed: 3).Inputs));
        Assert.False(Same(Datasets.Moons(seed: 3).Inputs, Datasets.Moons(seed: 4).Inputs));
        Assert.True(Same(Datasets.Spheres(seed: 5).Inputs, Datasets.Spheres(seed: 5).Inputs));
        Assert.False(Same(Datasets.Spheres(seed: 5).Inputs, Datasets.Spheres(seed: 6).Inputs));
        Assert.True(Same(Datasets.Checkerboard(seed: 1), Datasets.Checkerboard(seed: 1)));
        Assert.False(Same(Datasets.Checkerboard(seed: 1), Datasets.Checkerboard(seed: 2)));
    }

    [Fact]
    public void AGeneratorIsAdvancedSoSuccessiveBatchesDifferButReplay()
    {
        torch.Tensor[] Batches(ulong seed)
        {
            using var g = new torch.Generator(seed);
            return new[] { Datasets.Spirals(n: 20, generator: g).Inputs, Datasets.Spirals(n: 20, generator: g).Inputs };
        }
        var first = Batches(9);
        var again = Batches(9);
        Assert.False(Same(first[0], first[1]));
        Assert.True(Same(first[0], again[0]));
        Assert.True(Same(first[1], again[1]));
    }

    [Fact]
    public void ReflectionTargetsAreMinusTheInputsAndG1dInputsArePlusOrMinusOne()
    {
        var (x, y) = Datasets.Reflection(dim: 3, n: 100, dtype: torch.ScalarType.Float64);
        Assert.True(Same(y, x.neg()));
        var (x1, y1) = Datasets.Reflection1D(n: 100, dtype: torch.ScalarType.Float64);
        Assert.All(x1.data<double>().ToArray(), v => Assert.True(v == 1.0 || v == -1.0));
        Assert.True(Same(y1, x1.neg()));
    }

    [Fact]
    public void TheDefaultPeriodicSignalIsFigure1sCircle()
    {
        var at = Datasets.PeriodicSignalAt(0.125);
        Assert.Equal(Math.Cos(Math.PI / 4), at[0], 12);
        Assert.Equal(Math.Sin(Math.PI / 4), at[1], 12);
    }

    [Fact]
    public void GivenMeansOverrideTheCircle()
    {
        var means = new double[,] { { 10.0, 0.0, 0.0 } };
        var (x, y) = Datasets.GaussianMixture(n: 200, sigma: 0.1, means: means, dtype: torch.ScalarType.Float64);
        Assert.Equal(new long[] { 200, 3 }, x.shape);
        Assert.Equal(0L, y.max().ToInt64());
        Assert.Equal(10.0, x[.., 0].mean().ToDouble(), 1);
    }

    [Theory]
    [InlineData("n")]
    [InlineData("noise")]
    [InlineData("seed")]
    [InlineData("dim")]
    [InlineData("sigma")]
    public void ArgumentErrorsNameTheArgument(string argument)
    {
        Action call = argument switch
        {
            "n" => () => Datasets.Spirals(n: 7),
            "noise" => () => Datasets.Moons(noise: -1.0),
            "seed" => () => Datasets.Checkerboard(seed: -1),
            "dim" => () => Datasets.Spheres(dim: 0),
            _ => () => Datasets.GaussianMixture(sigma: 0.0),
        };
        var e = Assert.Throws<ArgumentOutOfRangeException>(call);
        Assert.Equal(argument, e.ParamName);
    }

    /// <summary>IDX files (MNIST / Fashion-MNIST) from C#: a written gzip fixture reads back as images and labels,
    /// and a truncated one is refused with its name.</summary>
    [Fact]
    public void IdxImagesAndLabelsRoundTrip()
    {
        var dir = Directory.CreateTempSubdirectory("neuralode-idx-cs-").FullName;
        try
        {
            var images = Path.Combine(dir, "images-idx3-ubyte.gz");
            var labels = Path.Combine(dir, "labels-idx1-ubyte.gz");
            Datasets.WriteIdx(images, new[] { 2, 3, 3 }, Enumerable.Range(0, 18).Select(i => (byte)(i * 14)).ToArray());
            Datasets.WriteIdx(labels, new[] { 2 }, new byte[] { 4, 1 });
            using var x = Datasets.IdxImages(images);
            Assert.Equal(new long[] { 2, 1, 3, 3 }, x.shape);
            Assert.Equal(14f / 255f, x.data<float>()[1], 6);
            using var y = Datasets.IdxLabels(labels);
            Assert.Equal(new long[] { 4, 1 }, y.data<long>().ToArray());
            var truncated = Path.Combine(dir, "truncated-idx1-ubyte");
            Datasets.WriteIdx(truncated, new[] { 5 }, new byte[5]);
            File.WriteAllBytes(truncated, File.ReadAllBytes(truncated)[..^2]);
            var e = Assert.Throws<InvalidDataException>(() => Datasets.IdxLabels(truncated));
            Assert.Contains("truncated-idx1-ubyte", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
