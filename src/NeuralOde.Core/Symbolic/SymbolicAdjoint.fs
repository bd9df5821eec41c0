/// Gradients by the adjoint method with the adjoint system derived symbolically (Formulas) and evaluated without an
/// autograd graph: for dz/ds = f(s, z; θ), L = Φ(z(S)) + ∫_{s0}^{S} l(s, z) ds, solve z forward, then
/// [z, a, μ] backward from S with a(S) = ∂Φ/∂z(S), μ(S) = 0, ȧ = −aᵀ∂f/∂z − ∂l/∂z, μ̇ = −aᵀ∂f/∂θ (Proposition 1),
/// so that a(s0) = dL/dz(s0) and μ(s0) = dL/dθ. The running loss must not depend on θ.
module NeuralOde.Core.Symbolic.SymbolicAdjoint

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Symbolic

/// What `gradients` returns: the final state, the loss's integral term, and the gradients.
type AdjointResult =
    { /// z(S).
      Final: torch.Tensor
      /// ∫ l ds over the span (0 when there is no running loss).
      Integral: float
      /// dL/dz(s0) = a(s0).
      StateGradient: torch.Tensor
      /// dL/dθ for each parameter.
      ParameterGradients: Map<string, torch.Tensor> }

/// The gradients of L = Φ(z(S)) + ∫ l ds for the field `field` over the state variable `state`, with the depth
/// bound to the scalar variable `depth` (if the field or loss uses one), the parameters bound in `parameters`
/// (by name), the running loss `runningLoss`, and ∂Φ/∂z(S) given by `terminalGradient`, from `x0` over `span`.
let gradients (field: Expr) (state: string) (depth: string option) (parameters: Map<string, torch.Tensor>)
              (runningLoss: Expr option) (terminalGradient: torch.Tensor -> torch.Tensor)
              (x0: torch.Tensor) (span: float * float) (solver: ButcherTableau) (control: StepControl) : AdjointResult =
    let names = parameters |> Map.toList |> List.map fst
    let derivation = Formulas.derive field state names runningLoss
    // Each formula compiled once, its common subexpressions shared.
    let fieldCode = Compile.compile field
    let lossCode = Compile.compile (defaultArg runningLoss (Const 0.0))
    let adjointCode = Compile.compile derivation.AdjointDerivative
    let integrandCode = names |> List.map (fun p -> p, Compile.compile derivation.ParameterIntegrands[p]) |> Map.ofList
    let t0, t1 = span
    use _ = torch.no_grad()
    let depthBinding (t: float) =
        match depth with
        | Some name -> [ name, torch.tensor(t, dtype = x0.dtype, device = x0.device) ]
        | None -> []
    let environment (t: float) (bindings: (string * torch.Tensor) list) =
        List.fold (fun acc (k, v) -> Map.add k v acc) parameters (depthBinding t @ bindings)
    let shape = x0.shape
    let n = x0.numel()
    // Forward: [z; q] with q̇ = l, flattened.
    let forward: VectorField =
        fun t y ->
            let z = y.narrow(0L, 0L, n).reshape(shape)
            let env = environment t [ state, z ]
            use dz = fieldCode.Invoke env
            use dq = lossCode.Invoke env
            use dqSum = dq.sum()
            torch.cat([| dz.reshape(-1L); dqSum.reshape(1L) |], 0L)
    use y0 = torch.cat([| x0.reshape(-1L); torch.zeros([| 1L |], dtype = x0.dtype, device = x0.device) |], 0L)
    use forwardSolution = Ode.odeint forward y0 [| t0; t1 |] solver control
    use yS = forwardSolution.Final
    let zS = yS.narrow(0L, 0L, n).reshape(shape).clone()
    let integral = yS[n].ToDouble()
    // Backward: [z; a; μ_1; …] from S to s0.
    let sizes = names |> List.map (fun p -> parameters[p].numel())
    let shapes = names |> List.map (fun p -> parameters[p].shape)
    let backward: VectorField =
        fun t y ->
            let z = y.narrow(0L, 0L, n).reshape(shape)
            let a = y.narrow(0L, n, n).reshape(shape)
            let env = environment t [ state, z; derivation.Adjoint, a ]
            use dz = fieldCode.Invoke env
            use da = adjointCode.Invoke env
            let dmu = names |> List.map (fun p -> (integrandCode[p].Invoke env).neg().reshape(-1L))
            let parts = [ dz.reshape(-1L); da.reshape(-1L) ] @ dmu
            let result = torch.cat(Array.ofList parts, 0L)
            for d in dmu do d.Dispose()
            result
    use aS = terminalGradient zS
    let muS = sizes |> List.map (fun size -> torch.zeros([| size |], dtype = x0.dtype, device = x0.device))
    use yBack = torch.cat(Array.ofList ([ zS.reshape(-1L); aS.reshape(-1L) ] @ muS), 0L)
    for m in muS do m.Dispose()
    use backwardSolution = Ode.odeint backward yBack [| t1; t0 |] solver control
    use yStart = backwardSolution.Final
    let stateGradient = yStart.narrow(0L, n, n).reshape(shape).clone()
    let mutable offset = 2L * n
    let gradients =
        List.zip3 names sizes shapes
        |> List.map (fun (p, size, s) ->
            let g = yStart.narrow(0L, offset, size).reshape(s).clone()
            offset <- offset + size
            p, g)
        |> Map.ofList
    { Final = zS; Integral = integral; StateGradient = stateGradient; ParameterGradients = gradients }
