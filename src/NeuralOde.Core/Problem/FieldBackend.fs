/// Field backends: how a problem's vector field can be evaluated besides calling it on tensors. A backend compiles the
/// field for one solve (its state's shape, dtype and device, the parameters' current values) into a system on host
/// buffers that evaluates f and its vector–Jacobian products without autograd; the solve then runs the one integration
/// loop and the one adjoint on the buffer state algebra. A problem carries its backend (OdeProblem.withFieldBackend);
/// Ode.solveWith decides whether the solve can use it, and the solution's statistics say which ran.
namespace NeuralOde.Core

open System
open TorchSharp
open NeuralOde.Core.State.Buffers

/// A field compiled for one solve: f on flat states of `Length` entries (the solve's x reshaped to one row), and on the
/// adjoint's augmented states [x; a; μ] of 2·Length + ParameterLength entries.
type internal ICompiledSystem =
    inherit IDisposable
    /// Entries of the state.
    abstract Length: int
    /// The tensors θ the parameter products are for, in order; μ holds their entries flattened, one after the other.
    abstract Parameters: torch.Tensor[]
    /// Σ of the parameters' entries.
    abstract ParameterLength: int
    /// f(t, y) into dy (1 × Length buffers; y is left unchanged).
    abstract Evaluate: t: float * y: Buffer * dy: Buffer -> unit
    /// On y = [x; a; μ]: dy = [f(t, x); −aᵀ ∂f/∂x; −aᵀ ∂f/∂θ] (zeros for the parameters that do not require grad).
    abstract EvaluateAdjoint: t: float * y: Buffer * dy: Buffer -> unit

/// A compiled field that keeps every evaluation it is asked to (a tape of slots), for the discrete adjoint of fixed
/// steps: the products at a slot use that evaluation's saved intermediates.
type internal ITapedSystem =
    inherit ICompiledSystem
    /// f(t, y) into dy, keeping what the products at this evaluation need under `slot` (0, 1, 2, … in order).
    abstract EvaluateTaped: slot: int * t: float * y: Buffer * dy: Buffer -> unit
    /// gy = (∂f/∂y)ᵀ g at the slot's evaluation (g is overwritten); the parameters' share is added to the
    /// accumulators (ClearGradients, ParameterGradients).
    abstract ProductsAt: slot: int * t: float * g: Buffer * gy: Buffer -> unit
    abstract ClearGradients: unit -> unit
    /// The accumulated parameter gradients as new tensors, in the order of Parameters (null where not required).
    abstract ParameterGradients: unit -> torch.Tensor[]
    /// False once the system, given back (Dispose), has had its buffers rented by another solve: its tape is gone.
    abstract Valid: bool

/// A field backend: compiles a field for a solve from x0, or says why it cannot (the solve then evaluates the field on
/// tensors). Public so that other assemblies can name one; its members are the library's.
type IFieldBackend =
    /// What it is, for the solve's statistics (e.g. "compiled MLP").
    abstract Name: string
    /// Why it cannot run a solve from x0 (shape, dtype, device, the field's layers), or None when it can.
    abstract Refusal: x0: torch.Tensor -> string option

/// The library's side of a field backend.
type internal ICompilingBackend =
    inherit IFieldBackend
    /// The field compiled for a solve from x0 (Refusal x0 = None), its weights read now, running its row chunks on
    /// `threads` threads; with `tape` an ITapedSystem.
    abstract Compile: x0: torch.Tensor * threads: int * tape: bool -> ICompiledSystem
    /// Whether its systems keep a tape (ITapedSystem) for the discrete adjoint of fixed steps.
    abstract CanTape: bool
    /// How a solve from x0 on `threads` threads splits the batch: the features per row and the chunks of rows (first
    /// row, count) of x0 reshaped to rows × features. Fixed steps do not couple rows, so the discrete adjoint solves
    /// each chunk on its own thread from start to end (one parallel region per pass, not one per evaluation).
    abstract RowChunks: x0: torch.Tensor * threads: int -> int64 * (int * int)[]
    /// The buffer algebras its solves rent (kept between solves).
    abstract Algebras: NeuralOde.Core.State.BufferAlgebraPool
    /// Keeps TorchSharp's wrappers of gradients a backward pass handed to libtorch (which holds its own references),
    /// to free them at this thread's next solve: a training loop then leaves none alive, scope or not.
    abstract Hand: tensors: seq<torch.Tensor> -> unit
    /// Frees the wrappers this thread handed.
    abstract FreeHanded: unit -> unit

/// Which backend evaluates a model's field (torchdyn's and diffrax's users get this choice implicitly).
type FieldBackendChoice =
    /// A compiled backend when one recognises the field and the solve allows it (the statistics say which ran).
    | Auto = 0
    /// Always the module itself, on tensors, differentiated by autograd.
    | Module = 1
