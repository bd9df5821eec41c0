namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A Lagrangian neural network's vector field (Cranmer, Greydanus, Hoyer, Battaglia, Spergel & Ho 2020,
/// "Lagrangian Neural Networks"): a learned scalar L(q, q̇) — `lagrangian`, any module mapping states [N, 2n] to
/// [N] or [N, 1], acting on each sample alone — and, on the state x = [q, q̇] ([N, 2n], n = `coordinates`),
/// f(x) = (q̇, q̈) with the Euler–Lagrange accelerations
///   q̈ = (∇_q̇ ∇_q̇ᵀ L)⁻¹ [∇_q L − (∇_q ∇_q̇ᵀ L) q̇],
/// where (∇_q ∇_q̇ᵀ L)_ij = ∂²L/∂q̇_i ∂q_j. The gradient and the n rows of the Hessian blocks come from autograd
/// (one gradient, then n vector–Jacobian products), and the n × n systems are solved together by
/// torch.linalg.solve_ex ([N, n, n]).
///
/// The velocity Hessian ∂²L/∂q̇² must be invertible (L non-degenerate: a kinetic term ½ q̇ᵀ M(q) q̇ with M positive
/// definite). Where it is singular at some sample — an exactly zero pivot, or a solution that is not finite — the
/// field raises an ArgumentException naming `lagrangian`, with the sample and its state; it does not regularise
/// silently. `ridge` (default 0) adds ridge·I to the Hessian before the solve, a documented bias that keeps learned
/// Lagrangians solvable while they train. The field is differentiable with respect to x and L's parameters when
/// grad is enabled (the Hessian rows keep their graphs) and works under every sensitivity; the adjoint then
/// differentiates third derivatives of L, so L's activations should be smooth (tanh, softplus — not ReLU, whose
/// second derivative is zero).
type LagrangianField(coordinates: int, lagrangian: Module<torch.Tensor, torch.Tensor>, ridge: float) as this =
    inherit Module<torch.Tensor, torch.Tensor>("lagrangian_field")
    do
        if coordinates < 1 then
            raise (System.ArgumentOutOfRangeException("coordinates", coordinates, $"coordinates (n, the number of positions) must be at least 1; got {coordinates}."))
        if isNull lagrangian then raise (System.ArgumentNullException("lagrangian"))
        if System.Double.IsNaN ridge || System.Double.IsInfinity ridge || ridge < 0.0 then
            raise (System.ArgumentOutOfRangeException("ridge", ridge, $"ridge must be a finite number ≥ 0; got {ridge}."))
        this.register_module("lagrangian", lagrangian)

    /// The field of `lagrangian` without a ridge: a singular velocity Hessian raises.
    new(coordinates: int, lagrangian: Module<torch.Tensor, torch.Tensor>) = new LagrangianField(coordinates, lagrangian, 0.0)

    /// The number of positions n (the state has 2n features: q then q̇).
    member _.Coordinates = coordinates

    /// The learned scalar L(q, q̇).
    member _.Lagrangian = lagrangian

    /// The multiple of the identity added to ∂²L/∂q̇² before the solve (0: none).
    member _.Ridge = ridge

    /// The energy E = q̇ ⋅ ∂L/∂q̇ − L per sample [N] at states x = [q, q̇] of shape [N, 2n] (the Hamiltonian, conserved
    /// by the field's exact flow); differentiable when grad is enabled.
    member _.Energy(x: torch.Tensor) : torch.Tensor =
        ScalarNetwork.checkState "LagrangianField" coordinates x
        let createGraph = torch.is_grad_enabled()
        use scope = torch.NewDisposeScope()
        use _ = torch.enable_grad()
        let xr = ScalarNetwork.differentiable x
        let l = ScalarNetwork.evaluate "LagrangianField" "lagrangian" lagrangian xr
        let g = ScalarNetwork.gradient l (torch.ones_like(l)) xr createGraph
        let n = int64 coordinates
        let e = Internal.TensorOps.addScaled ((g.narrow(1L, n, n) * xr.narrow(1L, n, n)).sum(1L)) l -1.0
        (if createGraph then e else e.detach()).MoveToOuterDisposeScope()

    /// L(x) per sample [N] at states x = [q, q̇] of shape [N, 2n].
    member _.Value(x: torch.Tensor) : torch.Tensor =
        ScalarNetwork.checkState "LagrangianField" coordinates x
        ScalarNetwork.evaluate "LagrangianField" "lagrangian" lagrangian x

    /// (q̇, q̈) at x = [q, q̇], [N, 2n].
    override _.forward(x: torch.Tensor) =
        ScalarNetwork.checkState "LagrangianField" coordinates x
        let createGraph = torch.is_grad_enabled()
        use scope = torch.NewDisposeScope()
        use _ = torch.enable_grad()
        let n = int64 coordinates
        let xr = ScalarNetwork.differentiable x
        let l = ScalarNetwork.evaluate "LagrangianField" "lagrangian" lagrangian xr
        // The first gradient always keeps its graph: the Hessian rows are its derivatives.
        let g = ScalarNetwork.gradient l (torch.ones_like(l)) xr true
        let gq, gv = g.narrow(1L, 0L, n), g.narrow(1L, n, n)
        // Row i: ∂(∂L/∂q̇_i)/∂x = [∂²L/∂q̇_i∂q, ∂²L/∂q̇_i∂q̇], one vector–Jacobian product with the one-hot seed e_i.
        let rows =
            [| for i in 0L .. n - 1L do
                 let seed = torch.zeros_like(gv)
                 use one = Scalar.op_Implicit 1.0
                 seed.select(1L, i).fill_(one) |> ignore
                 ScalarNetwork.gradient gv seed xr createGraph |]
        let hessian = torch.stack(rows, 1L)                          // [N, n, 2n]
        let mixed = hessian.narrow(2L, 0L, n)                        // ∂²L/∂q̇_i∂q_j
        let velocityHessian = hessian.narrow(2L, n, n)               // ∂²L/∂q̇_i∂q̇_j
        let v = xr.narrow(1L, n, n)
        let rhs = Internal.TensorOps.addScaled gq (mixed.matmul(v.unsqueeze(2L)).squeeze(2L)) -1.0
        let system =
            if ridge = 0.0 then velocityHessian
            else Internal.TensorOps.addScaled velocityHessian (torch.eye(n, dtype = x.dtype, device = x.device)) ridge
        let struct (solution, info) = torch.linalg.solve_ex(system, rhs.unsqueeze(2L))
        let acceleration = solution.squeeze(2L)
        use zero = Scalar.op_Implicit 0
        let singular = info.ne(zero).logical_or(acceleration.isfinite().logical_not().any(1L))
        if singular.any().ToBoolean() then
            use perSample = singular
            let k = (perSample.nonzero().select(0L, 0L).select(0L, 0L)).ToInt64()
            let state = Internal.TensorOps.hostValues (x.detach().select(0L, k)) |> Array.map (fun v -> v.ToString("G6")) |> String.concat ", "
            if not (Internal.TensorOps.allFinite (x.detach().select(0L, k))) then
                raise (System.ArgumentException($"LagrangianField got a state that is not finite at sample {k}: [{state}].", "x"))
            let hint = if ridge = 0.0 then " Give the field a small ridge (ridge·I is added to the Hessian) or a Lagrangian with a positive-definite kinetic term." else ""
            raise (System.ArgumentException($"The velocity Hessian ∂²L/∂q̇² of the Lagrangian is singular (or the accelerations not finite) at sample {k}, state [{state}]: L must be non-degenerate in q̇ (ridge = {ridge}).{hint}", "lagrangian"))
        let f = torch.cat([| v; acceleration |], 1L)
        (if createGraph then f else f.detach()).MoveToOuterDisposeScope()

    // Components are registered by name in the constructor (see Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()
