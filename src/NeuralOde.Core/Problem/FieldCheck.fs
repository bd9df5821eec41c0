/// The checks of a vector field's output at one evaluation, shared by every solve's field (Engine/Integrate.fs) and by
/// each part of a split field (OdeProblem.createSplit): what the field raises comes out with the time, and a result that
/// is null, disposed, or of another shape, dtype or device than the state is named with the time. Metadata only: no
/// host synchronisation.
module internal NeuralOde.Core.FieldCheck

open TorchSharp
open NeuralOde
open NeuralOde.Core.Internal

/// Which field is checked, as messages name it: "The vector field" and f(t, x), or a part of a split field.
type Named =
    { /// The subject of a message, e.g. "The vector field".
      Who: string
      /// Its value at (t, x), e.g. "f(t, x)".
      Value: string }

/// The problem's vector field f.
let whole = { Who = "The vector field"; Value = "f(t, x)" }
/// The non-stiff part f_E of a split field (treated explicitly by the IMEX solvers).
let nonStiff = { Who = "The non-stiff part f_E of the split vector field"; Value = "f_E(t, x)" }
/// The stiff part f_I of a split field (treated implicitly by the IMEX solvers).
let stiff = { Who = "The stiff part f_I of the split vector field"; Value = "f_I(t, x)" }

let private mismatch (name: Named) (what: string) (t: float) (x: torch.Tensor) (dx: torch.Tensor) =
    OdeSolveException(
        OdeFailure.VectorFieldMismatch, t,
        $"{name.Who} returned a tensor whose {what} differs from the state's at t = {t}: state {TensorOps.shapeText x} {x.dtype} on {x.device}, {name.Value} {TensorOps.shapeText dx} {dx.dtype} on {dx.device}. It must return dx/dt with the state's shape, dtype and device.")

/// Calls f at (t, x) and checks its output against x: raises OdeSolveException (VectorFieldFailed with f's exception
/// inside, or VectorFieldMismatch) with the time.
let call (name: Named) (f: float -> torch.Tensor -> torch.Tensor) (t: float) (x: torch.Tensor) : torch.Tensor =
    let dx = OdeSolveException.Calling(t, fun () -> f t x)
    if isNull dx then raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t, $"{name.Who} returned null at t = {t}."))
    if dx.IsInvalid then raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t, $"{name.Who} returned a disposed tensor at t = {t}: return a new tensor (a `using`/`use` on the result, or a dispose scope ended inside f, frees it before the solver reads it)."))
    if dx.shape <> x.shape then raise (mismatch name "shape" t x dx)
    if dx.dtype <> x.dtype then raise (mismatch name "dtype" t x dx)
    if dx.device_type <> x.device_type || dx.device_index <> x.device_index then raise (mismatch name "device" t x dx)
    dx
