using TorchSharp;
using static TorchSharp.torch.nn;

namespace NeuralOde.Tests;

/// <summary>
/// <see cref="NativeBackend.EnsureCorrectConvolutions"/> from C#: after it, float32 convolutions agree with float64
/// (on the CPUs where libtorch's oneDNN computes them wrong, because it switched oneDNN off), and a convolutional
/// block trains to finite parameters.
/// </summary>
public class ConvolutionCheckTests
{
    [Fact]
    public void AfterTheCheckFloat32ConvolutionGradientsAgreeWithFloat64()
    {
        var report = NativeBackend.EnsureCorrectConvolutions();
        Assert.Contains(report.State, new[] { ConvolutionBackendState.Correct, ConvolutionBackendState.SwitchedOff });
        Assert.Equal(report, NativeBackend.EnsureCorrectConvolutions());
        if (report.State == ConvolutionBackendState.SwitchedOff)
        {
            Assert.NotNull(report.WorstCase);
            Assert.Equal(false, NativeBackend.OneDnnEnabled);
        }
        var generator = new torch.Generator(11);
        // One input channel, 3 output channels, batch 4: wrong input gradients with oneDNN on the affected CPUs.
        using var x = torch.randn(new long[] { 4, 1, 9, 9 }, generator: generator).requires_grad_(true);
        using var w = torch.randn(new long[] { 3, 1, 3, 3 }, generator: generator).requires_grad_(true);
        using var y = torch.nn.functional.conv2d(x, w, padding: new long[] { 1, 1 });
        using var g = torch.randn(y.shape, generator: generator);
        var grads = torch.autograd.grad(new[] { y }, new[] { x, w }, new[] { g });
        using var x64 = x.detach().to_type(torch.float64).requires_grad_(true);
        using var w64 = w.detach().to_type(torch.float64).requires_grad_(true);
        using var y64 = torch.nn.functional.conv2d(x64, w64, padding: new long[] { 1, 1 });
        var grads64 = torch.autograd.grad(new[] { y64 }, new[] { x64, w64 }, new[] { g.to_type(torch.float64) });
        for (var i = 0; i < 2; i++)
        {
            var error = (grads[i].to_type(torch.float64) - grads64[i]).abs().max().ToDouble() / grads64[i].abs().max().ToDouble();
            Assert.True(error < 1e-4, $"gradient {i}: relative error {error:G3} ({report})");
        }
    }

    [Fact]
    public void TheTrainerNamesTheParameterWhoseGradientWentNonFinite()
    {
        torch.manual_seed(3);
        using var block = new NeuralOdeBlock(Sequential(Linear(2, 8), Tanh(), Linear(8, 2)), solver: Solvers.Rk4(), stepSize: StepSize.Steps(2));
        using var optimizer = torch.optim.SGD(block.parameters(), 0.01);
        var bias = block.named_parameters().Last();
        using var x = torch.randn(8, 2);
        // sqrt at 0 has an infinite derivative: the last bias's gradient is Inf at the first iteration.
        var trainer = new Trainer<torch.Tensor>(block, optimizer, b => block.forward(b).square().mean() + (bias.parameter - bias.parameter.detach()).abs().sqrt().sum());
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Fit(_ => new[] { x }));
        Assert.Equal("gradient", e.What);
        Assert.Equal(bias.name, e.Parameter);
        Assert.Equal((1, 1), (e.Epoch, e.Iteration));
        Assert.Contains(bias.name, e.Message);
    }
}
