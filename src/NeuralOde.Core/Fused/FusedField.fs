/// A recognised MLP field evaluated by the fused kernels, one evaluation at a time: f(t, x), and f with its
/// vector–Jacobian products (aᵀ ∂f/∂x, aᵀ ∂f/∂θ) for the adjoint sensitivities, which integrate their own (adaptive)
/// solves and hand the field arbitrary states. It replaces the module's evaluation and autograd's products in the
/// problem a NeuralOdeModel builds for an adjoint (OdeProblem.withVectorJacobianProduct), with the same values.
module internal NeuralOde.Core.Fused.FusedField

open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Fused.MlpField
open NeuralOde.Core.Fused.Kernels
open NeuralOde.Core.Fused.Workspace

/// The field for states of `rows` rows (x reshaped to rows × features), its weights read once, when it is made: the
/// parameters must not change while a solve and its backward pass use it (an optimiser steps after both).
type FusedField(layers: AffineLayer[], dtype: torch.ScalarType, rows: int) =
    let features = layers[0].InFeatures
    let kernels = kernelsFor dtype
    // One evaluation slot and the backward buffers; not any caller's dispose scope's: an adjoint's backward pass may
    // run after the scope of its forward pass has ended.
    let ws = (use _ = torch.no_grad() in new Workspace(dtype, rows, layers, 1, 1, true))
    do
        for b in ws.AllBuffers do b.Tensor.DetachFromDisposeScope() |> ignore
        use _ = torch.no_grad()
        ws.Refresh layers
    let gate = obj ()
    let load (target: Buffer) (x: Tensor) =
        if x.numel() <> int64 (rows * features) then
            invalidArg "x" $"The fused field was made for {rows} × {features} states; got shape {Internal.TensorOps.shapeText x}."
        use flat = x.reshape(-1L, int64 features)
        target.Tensor.copy_(flat) |> ignore
    let forward (t: float) (x: Tensor) =
        use _ = torch.no_grad()
        load (ws.Input 0) x
        ws.AtDepth t
        evaluateSlot kernels ws layers 0
        use k = ws.K(0).Tensor.clone()
        k.reshape(x.shape)

    /// The parameters the products are for, in order: W₁, b₁, … (α for a Galerkin layer).
    member _.Parameters = parameters layers

    /// f(t, x), a new tensor.
    member _.Evaluate(t: float, x: Tensor) : Tensor = lock gate (fun () -> forward t x)

    /// (f(t, x), aᵀ ∂f/∂x, [aᵀ ∂f/∂θ_i]), new tensors.
    member _.ValueAndProducts(t: float, x: Tensor, a: Tensor) : Tensor * Tensor * Tensor[] =
        lock gate (fun () ->
            let fx = forward t x
            use _ = torch.no_grad()
            let b = ws.Backward
            load b.KBar[0] a
            clearGradients ws
            vectorJacobianProduct kernels ws layers 0 t b.KBar[0] true
            let gx = (use u = b.UBar.Tensor.clone() in u.reshape(x.shape))
            fx, gx, parameterGradients ws layers)

    /// The problem's vector–Jacobian product (OdeProblem.withVectorJacobianProduct) by this field.
    member f.AsVectorJacobianProduct() : VectorJacobianProduct =
        { Parameters = f.Parameters
          Apply = fun t x a -> (let fx, gx, gTheta = f.ValueAndProducts(t, x, a) in fx.Dispose(); gx, gTheta)
          WithValue = Some(fun t x a -> f.ValueAndProducts(t, x, a)) }
