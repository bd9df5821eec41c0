/// The field backends a problem can carry, and problems of a module with its backend attached.
namespace NeuralOde.Core

open System.Runtime.CompilerServices
open TorchSharp
open NeuralOde.Core.FieldBackends.Mlp

/// Field backends for modules (FieldBackend.forModule …): `forModule` (the compiled MLP, one per module, kept with it), and `problemOf` (a
/// module's problem with its parameters declared and its backend attached, as a NeuralOdeModel builds it).
module FieldBackend =
    let private backends = ConditionalWeakTable<torch.nn.Module, MlpBackend>()

    let internal mlp (field: torch.nn.Module) = backends.GetValue(field, fun m -> MlpBackend(m))

    /// The compiled backend for a module's field: it runs when the module is a Sequential of Linear and GalLinear layers
    /// with tanh, sigmoid, ReLU or softplus between them, on a float32 or float64 CPU state (else the solve evaluates
    /// the module and its statistics say why). One per module: its workspaces are kept between solves.
    let forModule (field: torch.nn.Module) : IFieldBackend =
        if isNull field then raise (System.ArgumentNullException("field"))
        mlp field :> IFieldBackend

    /// The compiled backend of a flow's augmented field [f(z); tr ∂f/∂z] (states [N, d + 1]) with the trace's probes
    /// drawn from `seed`.
    let internal forFlow (field: torch.nn.Module) (trace: TraceEstimator) (seed: uint64) : IFieldBackend =
        TraceBackend(mlp field, trace, seed) :> IFieldBackend

    /// The problem dz/ds = field(s, z), z(times[0]) = x0: depth-aware layers told the depth, the module's parameters
    /// declared (for the adjoints), and its compiled backend attached unless `backend` is FieldBackendChoice.Module.
    let problemOf (field: torch.nn.Module<torch.Tensor, torch.Tensor>) (x0: torch.Tensor) (times: float[]) (backend: FieldBackendChoice) : OdeProblem =
        if isNull field then raise (System.ArgumentNullException("field"))
        let problem =
            OdeProblem.create (ModuleField.create field null) x0 times
            |> OdeProblem.withParameters (field.parameters() |> Seq.map (fun p -> p :> torch.Tensor))
        if backend = FieldBackendChoice.Module then problem else OdeProblem.withFieldBackend (forModule field) problem

    /// Ode.odeint for a module: solves dz/ds = field(s, z) from x0 at times[0] with outputs at `times`, by autograd,
    /// on the compiled backend where it can run (as a NeuralOdeModel does).
    let odeint (field: torch.nn.Module<torch.Tensor, torch.Tensor>) (x0: torch.Tensor) (times: float[]) (solver: ButcherTableau) (control: StepControl) =
        Ode.solve (problemOf field x0 times FieldBackendChoice.Auto) solver control
