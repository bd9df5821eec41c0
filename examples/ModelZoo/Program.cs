// The paper's models (Dissecting Neural ODEs, §4) from C#: one family per file, each trained briefly on its toy
// problem. `dotnet run --project examples/ModelZoo -- <family> [--quick]`; with no family, all of them.
using ModelZoo;

var families = new Dictionary<string, Func<bool, TextWriter, double>>
{
    ["augmentation"] = AugmentationExample.Run,
    ["data-control"] = DataControlExample.Run,
    ["adaptive-depth"] = AdaptiveDepthExample.Run,
    ["depth-variant"] = DepthVariantExample.Run,
    ["cnf"] = CnfExample.Run,
    ["regularisers"] = RegularisersExample.Run,
    ["symbolic"] = SymbolicExample.Run,
    ["symbolic-field"] = SymbolicFieldExample.Run,
    ["hamiltonian"] = HamiltonianExample.Run,
    ["symplectic"] = SymplecticExample.Run,
    ["hypersolver"] = HypersolverExample.Run,
    ["multiple-shooting"] = MultipleShootingExample.Run,
    ["backend"] = FieldBackendExample.Run,
};
var quick = args.Contains("--quick");
var chosen = args.Where(a => !a.StartsWith("--")).ToList();
foreach (var name in chosen.Where(n => !families.ContainsKey(n)))
{
    Console.Error.WriteLine($"Unknown family '{name}'; choose from: {string.Join(", ", families.Keys)}.");
    return 2;
}
foreach (var (name, run) in families.Where(f => chosen.Count == 0 || chosen.Contains(f.Key)))
{
    Console.WriteLine($"== {name} ==");
    run(quick, Console.Out);
}
return 0;
