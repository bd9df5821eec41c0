/// The one dispatcher (Ode.solveWithOptions): a problem with a compiled field backend runs on it where the sensitivity
/// allows and says why not otherwise; Ode.solve on a module is as fast as a block because it is the same solve.
module NeuralOde.Tests.FieldBackends.DispatchTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.FieldBackends.CompiledBlocks

/// The states at every output time and the gradients of Σ w·y² over all of them (x first, then the parameters).
let private statesAndGradients (field: TorchSharp.Modules.Sequential) (x: Tensor) (times: float[]) (solver: ButcherTableau) (control: StepControl) (backend: FieldBackendChoice) =
    use xg = x.detach().clone().requires_grad_(true)
    for p in field.parameters() do p.grad <- null
    let problem = FieldBackend.problemOf field xg times backend
    use solution = Ode.solve problem solver control
    use w = torch.linspace(-1.0, 1.0, solution.States.numel(), dtype = x.dtype).reshape(solution.States.shape)
    use loss = (solution.States * solution.States * w).sum()
    Ode.backward loss
    Tensors.toArray solution.States, [ yield Tensors.toArray xg.grad; for p in field.parameters() -> Tensors.toArray p.grad ], solution.Statistics

[<Tests>]
let tests =
    testList "FieldBackends/Dispatch" [
        test "Ode.solve on a module's problem runs compiled, with the module's states, gradients and counts" {
            use field = mlp torch.float64 2 16 "tanh" 51
            use x = input [| 12L; 2L |] torch.float64 501
            let ys, gs, s = statesAndGradients field x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 8) FieldBackendChoice.Auto
            let ym, gm, sm = statesAndGradients field x [| 0.0; 1.0 |] Solvers.rk4 (StepControl.steps 8) FieldBackendChoice.Module
            Expect.equal s.Backend "compiled MLP" "compiled"
            Expect.equal sm.Backend "module" "the module"
            agree 1e-12 "Ode.solve" (ys, gs, s) (ym, gm, sm)
            use byOdeint = FieldBackend.odeint field x [| 0.0; 0.5; 1.0 |] Solvers.rk4 (StepControl.steps 8)
            Expect.equal byOdeint.Statistics.Backend "compiled MLP" "FieldBackend.odeint: compiled"
            use onTensors = Ode.odeint (ModuleField.create field null) x [| 0.0; 0.5; 1.0 |] Solvers.rk4 (StepControl.steps 8)
            Expect.isLessThan (Tensors.relativeError (Tensors.toArray byOdeint.States) (Tensors.toArray onTensors.States)) 1e-12 "Ode.odeint on the module's function: the same states"
        }
        test "the discrete adjoint differentiates every output: at step ends and by dense output inside steps (Hermite and continuous)" {
            use field = mlp torch.float64 2 12 "softplus" 52
            use x = input [| 7L; 2L |] torch.float64 502
            // RK4 (Hermite: f at the step's end), Dopri5 and Tsit5 (continuous extensions), Euler; outputs on and between steps.
            for solver, times in [ Solvers.rk4, [| 0.0; 0.3; 0.5; 0.77; 1.0 |]
                                   Solvers.dopri5, [| 0.0; 0.125; 0.4; 1.0 |]
                                   Solvers.tsit5, [| 1.0; 0.61; 0.0 |]
                                   Solvers.euler, [| 0.0; 0.05; 0.5; 0.95 |]
                                   Solvers.midpoint, [| 0.0; 0.99 |] ] do
                let compiled = statesAndGradients field x times solver (StepControl.steps 4) FieldBackendChoice.Auto
                let _, _, s = compiled
                Expect.equal s.Backend "compiled MLP" $"{solver.Name}: compiled"
                agree 1e-11 $"{solver.Name} %A{times}" compiled (statesAndGradients field x times solver (StepControl.steps 4) FieldBackendChoice.Module)
        }
        test "where the compiled backend cannot run, the statistics say why, and the solve is the module's" {
            let why (field: Module<Tensor, Tensor>) (x: Tensor) (sensitivity: Sensitivity) (control: StepControl) =
                let problem = FieldBackend.problemOf field x [| 0.0; 1.0 |] FieldBackendChoice.Auto
                use solution = Ode.solveWith sensitivity problem Solvers.dopri5 control
                solution.Statistics.Backend
            use depthCat = Sequential(new DepthCat() :> Module<Tensor, Tensor>, Linear(3L, 8L), Tanh(), Linear(8L, 2L))
            use x = torch.randn([| 4L; 2L |])
            Expect.stringContains (why depthCat x Sensitivity.adjoint (StepControl.steps 4)) "module: its layer DepthCat" "an unrecognised layer"
            use shifted = Sequential(Linear(2L, 8L), Softplus(beta = 2.0), Linear(8L, 2L))
            Expect.stringContains (why shifted x Sensitivity.adjoint (StepControl.steps 4)) "module: its layer Softplus" "softplus with β ≠ 1"
            use mlp32 = mlp torch.float32 2 8 "tanh" 53
            use xg = torch.randn([| 4L; 2L |]).requires_grad_(true)
            Expect.stringContains (why mlp32 xg Sensitivity.Autograd (StepControl.adaptive 1e-4 1e-4)) "module: autograd through adaptive steps" "autograd through adaptive steps"
            Expect.equal (why mlp32 xg Sensitivity.adjoint (StepControl.adaptive 1e-4 1e-4)) "compiled MLP" "the adjoint runs compiled"
            Expect.equal (why mlp32 xg Sensitivity.Autograd (StepControl.steps 4)) "compiled MLP" "fixed steps: the discrete adjoint"
        }
        test "the solve's thread setting: one thread or three chunks, the same states and gradients" {
            use field = mlp torch.float64 2 16 "tanh" 54
            use x = input [| 800L; 2L |] torch.float64 503
            let run (threads: int) sensitivity control =
                use xg = x.detach().clone().requires_grad_(true)
                for p in field.parameters() do p.grad <- null
                let problem = FieldBackend.problemOf field xg [| 0.0; 1.0 |] FieldBackendChoice.Auto
                use solution = Ode.solveWithOptions { Threads = Some threads } sensitivity problem Solvers.dopri5 control
                use loss = solution.States.square().sum()
                Ode.backward loss
                Tensors.toArray solution.States, [ yield Tensors.toArray xg.grad; for p in field.parameters() -> Tensors.toArray p.grad ], solution.Statistics
            for sensitivity, control in [ Sensitivity.Autograd, StepControl.steps 5; Sensitivity.adjoint, StepControl.adaptive 1e-8 1e-8 ] do
                agree 1e-12 $"{sensitivity}" (run 1 sensitivity control) (run 3 sensitivity control)
            let problem = FieldBackend.problemOf field x [| 0.0; 1.0 |] FieldBackendChoice.Auto
            let e = Raises.raises<System.ArgumentOutOfRangeException> (fun () -> (use s = Ode.solveWithOptions { Threads = Some 0 } Sensitivity.Autograd problem Solvers.rk4 (StepControl.steps 2) in ()))
            Expect.equal e.ParamName "threads" "names threads"
        }
    ]
