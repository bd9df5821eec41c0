using TorchSharp;

namespace NeuralOde.Tests;

public class TorchSharpLoadTests
{
    [Fact]
    public void TensorOpAndBackwardRun()
    {
        using var x = torch.tensor(new[] { 1.0, -2.0, 3.0 }, requires_grad: true);
        using var y = (x * x).sum();
        y.backward();
        Assert.Equal(new[] { 2.0, -4.0, 6.0 }, x.grad!.data<double>().ToArray());
    }
}
