// Data-parallel training and an ensemble on MPI, in C#.
//   one machine:      mpirun -np 2 dotnet DataParallel.CSharp.dll
//   several machines: mpirun -np 8 --hostfile hosts dotnet DataParallel.CSharp.dll
// Without mpirun it runs as one process (the same result, by the equality the tests check).
// The single-process training loop becomes data-parallel by three changes, marked (1) (2) (3).
using NeuralOde;
using TorchSharp;
using static TorchSharp.torch.nn;

using var world = Distributed.Initialize();                                 // (1) join the job

torch.manual_seed(1);
var model = Sequential(
    new NeuralOdeBlock(Sequential(Linear(2, 32), Tanh(), Linear(32, 2)),
                       solver: Solvers.Dopri5(), stepSize: StepSize.Adaptive(1e-4, 1e-4),
                       sensitivity: Sensitivities.Adjoint()),
    Linear(2, 2));
var optimizer = torch.optim.Adam(model.parameters(), 1e-2);
var trainer = new Trainer<(torch.Tensor X, torch.Tensor Y)>(model, optimizer,
    batch => functional.cross_entropy(model.forward(batch.X), batch.Y));

// Global batches of 256, the same on every rank (the same seed); each rank trains on its shard of each.
IEnumerable<(torch.Tensor, torch.Tensor)> Batches(int epoch)
{
    var generator = new torch.Generator((ulong)epoch);
    for (var i = 0; i < 8; i++)
    {
        var (x, y) = Datasets.Moons(n: 256, noise: 0.1, generator: generator);
        yield return (world.Shard(x), world.Shard(y));                       // (2) this rank's shard
    }
}
var result = trainer.Fit(Batches, epochs: 10, world: world);                 // (3) gradients averaged over the ranks

// An ensemble: the trained block's flow from 16 initial points, split over the ranks, gathered to rank 0 in order.
var block = (NeuralOdeBlock)model[0];
var starts = torch.linspace(-1.0, 1.0, 16);
var ends = Ensemble.Map(world, 16, i =>
{
    using var _ = torch.no_grad();
    return block.forward(torch.stack(new[] { starts[i], starts[i] }).unsqueeze(0)).squeeze(0);
});

if (world.IsRoot)
{
    var (testX, testY) = Datasets.Moons(n: 1024, noise: 0.1, generator: new torch.Generator(99));
    using var _ = torch.no_grad();
    var accuracy = model.forward(testX).argmax(1).eq(testY).to_type(torch.float32).mean().ToSingle();
    Console.WriteLine($"{world.Size} rank(s) ({world.LibraryVersion}): epoch losses " +
                      string.Join(", ", result.Epochs.Select(e => e.Loss.ToString("F4"))) + $"; test accuracy {accuracy:P1}; " +
                      $"ensemble of {ends.Length} flows gathered, the first ends at ({ends[0][0].ToDouble():F3}, {ends[0][1].ToDouble():F3})");
    if (accuracy < 0.8 || ends.Length != 16) { Console.WriteLine("FAILED"); return 1; }
    Console.WriteLine("data-parallel example ok");
}
return 0;
