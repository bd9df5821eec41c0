/// The matrix M = I − hγ·∂F/∂y of an implicit step's Newton iteration, for a system dy/dt = F(t, y): evaluated at a
/// step's start, factorised for each hγ and kept across stages and steps (EsdirkStep decides when to renew it). Two
/// layouts: the field's own Jacobian in blocks (Implicit/Jacobian.fs: dense, or per row of a batch), and the adjoint
/// systems', whose matrices are built from the forward field's Jacobian J at the forward state x(t) — the costate
/// [a; μ] has ∂F/∂a = −Jᵀ, the backsolve's [x; a; μ] has J and −Jᵀ on its diagonal. The adjoint's off-diagonal parts
/// (a's dependence on x through second derivatives, μ's on a) are left out: the simplified Newton iteration needs an
/// approximation of M only (it converges to the same stages), and μ, on which nothing depends, is then solved exactly
/// by one iteration behind a. So a backward solve factorises n × n (or per-row) blocks, never a matrix over the
/// parameters.
module internal NeuralOde.Core.Implicit.NewtonMatrix

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// M for one solve: renewed at a step's start, factorised per hγ, applied as M⁻¹ r.
type INewtonMatrix =
    inherit IDisposable
    /// Evaluates the Jacobian at the step's start (t, y) of the system whose field is f.
    abstract Evaluate: f: (float -> Tensor -> Tensor) * t: float * y: Tensor -> unit
    /// Factorises M for this hγ (kept while hγ is unchanged); false when M is singular or not finite.
    abstract Factor: hGamma: float -> bool
    /// M⁻¹ r, shaped like r (a new tensor in the caller's dispose scope).
    abstract Solve: r: Tensor -> Tensor
    /// Whether a Jacobian has been evaluated.
    abstract IsEvaluated: bool

/// Replaces a kept tensor by another, which outlives the step's dispose scope.
let private keep (old: Tensor) (t: Tensor) =
    if not (isNull old) then old.Dispose()
    if isNull t then t else t.DetachFromDisposeScope()

/// LU factors of I − hγ·blocks, kept while hγ is unchanged.
type private Factors() =
    let mutable lu: Tensor = null
    let mutable pivots: Tensor = null
    let mutable factoredFor = nan
    member _.Reset() = factoredFor <- nan
    member _.Factor(blocks: Tensor, hGamma: float) =
        if hGamma = factoredFor then true
        else
            match StageNewton.factor blocks hGamma with
            | Some(l, p) ->
                lu <- keep lu l
                pivots <- keep pivots p
                factoredFor <- hGamma
                true
            | None -> false
    /// Solves for r's entries [offset, offset + b·d) as b blocks of d.
    member _.Solve(r: Tensor, b: int64, d: int64) = torch.linalg.lu_solve(lu, pivots, r.reshape([| b; d; 1L |])).reshape(-1L)
    member _.Dispose() =
        lu <- keep lu null
        pivots <- keep pivots null

/// The field's own Jacobian under the options' structure (and the options' Jacobian function, if any).
type private FieldBlocks(options: NewtonOptions) =
    let factors = Factors()
    let mutable jacobian: Tensor = null
    let mutable b, d = 0L, 0L
    interface INewtonMatrix with
        member _.Evaluate(f, t, y) =
            let blocks, size = Jacobian.blocks options.Structure y
            b <- blocks
            d <- size
            jacobian <- keep jacobian (Jacobian.evaluate options f t y b d)
            factors.Reset()
        member _.Factor hGamma = factors.Factor(jacobian, hGamma)
        member _.Solve r = (factors.Solve(r, b, d)).reshape(r.shape)
        member _.IsEvaluated = not (isNull jacobian)
        member _.Dispose() =
            jacobian <- keep jacobian null
            factors.Dispose()

/// M of the field's own Jacobian (dense or per-row blocks, by autograd or the options' function).
let ofField (options: NewtonOptions) : INewtonMatrix = new FieldBlocks(options)

/// An adjoint system's M on a flat state whose entries [aOffset, aOffset + n) hold the adjoint a (with ∂F/∂a = −Jᵀ)
/// and, for the backsolve, [xOffset, xOffset + n) the state x (∂F/∂x = J); the other entries (the parameters' μ)
/// get the identity. `jacobianAt t y` gives J of the forward field at the forward state belonging to (t, y), as blocks
/// [B, d, d] with B·d = n (detached, in the caller's scope).
type private AdjointBlocks(jacobianAt: float -> Tensor -> Tensor, xOffset: int64 option, aOffset: int64, n: int64) =
    let forX = Factors()
    let forA = Factors()
    let mutable jacobian: Tensor = null
    let mutable negatedTranspose: Tensor = null
    interface INewtonMatrix with
        member _.Evaluate(_, t, y) =
            use scope = torch.NewDisposeScope()
            let j = jacobianAt t y
            jacobian <- keep jacobian (j.MoveToOuterDisposeScope())
            negatedTranspose <- keep negatedTranspose ((TensorOps.scale (j.transpose(1L, 2L)) -1.0).contiguous().MoveToOuterDisposeScope())
            forX.Reset()
            forA.Reset()
        member _.Factor hGamma =
            forA.Factor(negatedTranspose, hGamma) && (xOffset.IsNone || forX.Factor(jacobian, hGamma))
        member _.Solve r =
            let b, d = jacobian.shape[0], jacobian.shape[1]
            let flat = r.reshape(-1L)
            let total = flat.shape[0]
            // The flat state in order: its segments (offset, length, solve), the gaps between them unchanged.
            let segments =
                [ yield aOffset, (fun (part: Tensor) -> forA.Solve(part, b, d))
                  match xOffset with
                  | Some x -> yield x, (fun (part: Tensor) -> forX.Solve(part, b, d))
                  | None -> () ]
                |> List.sortBy fst
            let pieces = Collections.Generic.List<Tensor>()
            let mutable at = 0L
            for offset, solve in segments do
                if offset > at then pieces.Add(flat.narrow(0L, at, offset - at))
                pieces.Add(solve (flat.narrow(0L, offset, n)))
                at <- offset + n
            if at < total then pieces.Add(flat.narrow(0L, at, total - at))
            torch.cat(pieces.ToArray(), 0L).reshape(r.shape)
        member _.IsEvaluated = not (isNull jacobian)
        member _.Dispose() =
            jacobian <- keep jacobian null
            negatedTranspose <- keep negatedTranspose null
            forX.Dispose()
            forA.Dispose()

/// M of the costate [a; μ] (a first, n entries), J at the forward solution belonging to each step's start.
let ofCostate (jacobianAt: float -> Tensor -> Tensor) (n: int64) : INewtonMatrix = new AdjointBlocks(jacobianAt, None, 0L, n)

/// M of the backsolve's augmented state [x; a; μ] (n entries each for x and a).
let ofAugmented (jacobianAt: float -> Tensor -> Tensor) (n: int64) : INewtonMatrix = new AdjointBlocks(jacobianAt, Some 0L, n, n)
