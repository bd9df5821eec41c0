namespace NeuralOde.Core

open TorchSharp
open type TorchSharp.torch.nn

/// A Hamiltonian neural network's vector field (Greydanus, Dzamba & Yosinski 2019, "Hamiltonian Neural Networks"):
/// a learned scalar H(q, p) — `hamiltonian`, any module mapping states [N, 2n] to [N] or [N, 1], acting on each
/// sample alone — and, on the state x = [q, p] ([N, 2n], n = `coordinates`), the symplectic gradient
/// f(x) = (∂H/∂p, −∂H/∂q). H is then conserved by the exact flow of f (dH/dt = ∇H ⋅ f = 0) whatever the network
/// learned, so a trained field does not drift in energy as a plain Neural ODE does.
///
/// The gradient is taken by autograd inside the field. With grad enabled (training, an adjoint's vector–Jacobian
/// products) it keeps its graph (create_graph), so the field is differentiable with respect to x and H's parameters
/// (a double backward); with grad disabled the result is detached. It works under every sensitivity. Depth-aware
/// and data-controlled modules inside H are told the depth and data like any other.
type HamiltonianField(coordinates: int, hamiltonian: Module<torch.Tensor, torch.Tensor>) as this =
    inherit Module<torch.Tensor, torch.Tensor>("hamiltonian_field")
    do
        if coordinates < 1 then
            raise (System.ArgumentOutOfRangeException("coordinates", coordinates, $"coordinates (n, the number of positions) must be at least 1; got {coordinates}."))
        if isNull hamiltonian then raise (System.ArgumentNullException("hamiltonian"))
        this.register_module("hamiltonian", hamiltonian)

    /// The number of positions n (the state has 2n features: q then p).
    member _.Coordinates = coordinates

    /// The learned scalar H(q, p).
    member _.Hamiltonian = hamiltonian

    /// H(x) per sample [N] for states x = [q, p] of shape [N, 2n]; differentiable when grad is enabled.
    member _.Energy(x: torch.Tensor) : torch.Tensor =
        ScalarNetwork.checkState "HamiltonianField" coordinates x
        ScalarNetwork.evaluate "HamiltonianField" "hamiltonian" hamiltonian x

    /// (∂H/∂p, −∂H/∂q) at x = [q, p], [N, 2n].
    override _.forward(x: torch.Tensor) =
        ScalarNetwork.checkState "HamiltonianField" coordinates x
        let createGraph = torch.is_grad_enabled()
        use scope = torch.NewDisposeScope()
        use _ = torch.enable_grad()
        let xr = ScalarNetwork.differentiable x
        let h = ScalarNetwork.evaluate "HamiltonianField" "hamiltonian" hamiltonian xr
        let g = ScalarNetwork.gradient h (torch.ones_like(h)) xr createGraph
        let n = int64 coordinates
        let f = torch.cat([| g.narrow(1L, n, n); g.narrow(1L, 0L, n).neg() |], 1L)
        (if createGraph then f else f.detach()).MoveToOuterDisposeScope()

    // Components are registered by name in the constructor (see Models/Fields/ModuleField.fs).
    override _.RegisterComponents() = ()
