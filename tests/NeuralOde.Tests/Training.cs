using TorchSharp;

namespace NeuralOde.Tests;

/// <summary>A small regression fit shared by the tests that train a block.</summary>
static class Training
{
    /// <summary>Fits <paramref name="block"/> to map x to target with Adam; returns the first and last losses.</summary>
    public static (double First, double Last) Fit(NeuralOdeBlock block, torch.Tensor x, torch.Tensor target, int iterations, double learningRate = 0.01)
    {
        using var optimizer = torch.optim.Adam(block.parameters(), learningRate);
        double first = 0, last = 0;
        for (int i = 0; i < iterations; i++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = (block.forward(x) - target).square().mean();
            loss.backward();
            optimizer.step();
            if (i == 0) first = loss.ToDouble();
            last = loss.ToDouble();
        }
        return (first, last);
    }
}
