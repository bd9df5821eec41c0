/// Packing several tensors into one flat 1-D state and back, for augmented systems (state + adjoint + parameter
/// gradients, or state + running loss) solved by the same integrator.
module internal NeuralOde.Core.Internal.FlatState

open TorchSharp

type Tensor = torch.Tensor

/// Each tensor flattened, cast to `dtype`, concatenated.
let pack (dtype: torch.ScalarType) (parts: Tensor[]) : Tensor =
    let flats = parts |> Array.map (fun p -> (use flat = p.reshape(-1L) in flat.to_type(dtype)))
    let result = torch.cat(flats, 0L)
    for f in flats do f.Dispose()
    result

/// Views of `flat` with the given shapes, in order (no copies).
let unpack (flat: Tensor) (shapes: int64[][]) : Tensor[] =
    let mutable offset = 0L
    [| for shape in shapes do
           let n = Array.fold (*) 1L shape
           let part = (use piece = flat.narrow(0L, offset, n) in piece.view(shape))
           offset <- offset + n
           yield part |]

/// Number of elements of a shape.
let numel (shape: int64[]) = Array.fold (*) 1L shape
