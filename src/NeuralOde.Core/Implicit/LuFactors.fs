/// LU factors of the matrices the implicit steps solve with (I − hγJ for ESDIRK stages, (1/(hγ)) I − J for
/// Rosenbrock stages), by torch.linalg.lu_factor batched over the Jacobian's blocks, with one verdict on singularity
/// for both: a matrix whose factorisation libtorch refuses (an exactly zero pivot), or whose pivots hold a zero, a
/// non-finite value or one below d·ε of the largest, is singular.
module internal NeuralOde.Core.Implicit.LuFactors

open System
open TorchSharp

type Tensor = torch.Tensor

/// The machine epsilon of float64, the scale of the relative pivot test.
let epsilon = 2.220446049250313e-16

/// True when LU factors [B, d, d] hold a zero or non-finite pivot, or one below d·ε of the largest.
let private singular (lu: Tensor) =
    use _ = torch.no_grad()
    use diagonal = lu.diagonal(0L, -2L, -1L)
    use sizes = diagonal.abs()
    let smallest = (use v = sizes.min() in v.to_type(torch.float64).item<float>())
    let largest = (use v = sizes.max() in v.to_type(torch.float64).item<float>())
    not (Double.IsFinite smallest && Double.IsFinite largest) || smallest <= float lu.shape[2] * epsilon * largest

/// The LU factors of m [B, d, d] (in the caller's dispose scope, in m's autograd graph if it has one), or None when m
/// is singular or not finite.
let tryFactor (m: Tensor) : (Tensor * Tensor) option =
    // libtorch raises for an exactly zero pivot ("U[i,i] is zero"): a singular matrix too.
    match (try Some(torch.linalg.lu_factor(m)) with :? Runtime.InteropServices.ExternalException -> None) with
    | Some(struct (lu, pivots)) when not (singular lu) -> Some(lu, pivots)
    | Some(struct (lu, pivots)) ->
        lu.Dispose()
        pivots.Dispose()
        None
    | None -> None
