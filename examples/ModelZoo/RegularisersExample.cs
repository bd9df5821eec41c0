using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

namespace ModelZoo;

/// <summary>Regularisers ("How to train your neural ODE", Finlay et al. 2020): the same block trained with and without
/// a kinetic-energy penalty ∫‖f‖² (a running loss of the block); the penalised field is straighter, and an adaptive
/// solver needs fewer function evaluations for it.</summary>
public static class RegularisersExample
{
    /// <summary>Trains both; returns (evaluations with) / (evaluations without) the penalty.</summary>
    public static double Run(bool quick, TextWriter log)
    {
        var plain = Train(0.0, quick, log);
        var penalised = Train(0.5, quick, log);
        log.WriteLine($"dopri5 (tolerance 1e-7) on the trained fields: {plain} evaluations without the penalty, {penalised} with it");
        return (double)penalised / plain;
    }

    static int Train(double weight, bool quick, TextWriter log)
    {
        // The field starts far from the straight flow the task needs (weights of unit variance); the endpoint loss
        // alone leaves it curved.
        torch.manual_seed(11);
        using var field = Sequential(Linear(2, 16, dtype: torch.float64), Tanh(), Linear(16, 2, dtype: torch.float64));
        using (torch.no_grad()) foreach (var p in field.parameters()) p.normal_();
        // The penalty weight goes to the block, which builds the regulariser from its own field (depth and data
        // included) for each solve; with weight 0 the block has none and ForwardWithIntegral is not available.
        using var block = new NeuralOdeBlock(field, solver: Solvers.Rk4(), stepSize: StepSize.Steps(4), kineticEnergy: weight);
        using var optimizer = torch.optim.Adam(block.parameters(), 0.05);
        using var g = new torch.Generator(5);
        using var shift = torch.tensor(new[] { 2.0, 0.0 });
        for (var i = 0; i < (quick ? 100 : 300); i++)
        {
            using var scope = torch.NewDisposeScope();
            var x = torch.randn(64, 2, dtype: torch.float64, generator: g);
            optimizer.zero_grad();
            torch.Tensor loss;
            if (weight > 0)
            {
                var (z, penalty) = block.ForwardWithIntegral(x);
                loss = (z - (x + shift)).square().mean() + penalty / 64;
            }
            else loss = (block.forward(x) - (x + shift)).square().mean();
            loss.backward();
            optimizer.step();
        }
        using var test = torch.randn(256, 2, dtype: torch.float64, generator: g);
        using var noGrad = torch.no_grad();
        using var solution = Ode.Solve((t, x) => field.forward(x), test, new[] { 0.0, 1.0 }, Solvers.Dopri5(), StepSize.Adaptive(1e-7, 1e-7));
        log.WriteLine($"kinetic-energy weight {weight}: {solution.Statistics.FunctionEvaluations} evaluations");
        return solution.Statistics.FunctionEvaluations;
    }
}
