/// The symbolic layer's compiled derivatives against autograd, measured interleaved in one run (ratios only):
///   symbolic-w2   W2 (annuli, MLP 2→64→64→2 tanh, Dopri5 at 1e-5, the adjoint, batch 1024, Adam) with the field as
///                 a SymbolicField (the adjoint's VJPs compiled symbolically) against the same weights as modules
///                 (the adjoint's VJPs by autograd); per iteration and per function evaluation.
///   symbolic-cnf  a CNF's exact trace, closed-form symbolic against autograd's d passes, at d = 2, 16, 64 (MLP
///                 d→64→d tanh, batch 512, RK4 with 10 steps): log p alone (no grad) and log p with its backward.
module NeuralOde.Benchmarks.SymbolicFields

open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Symbolic
open NeuralOde.Benchmarks.Report

type private Tensor = torch.Tensor

/// tanh(tanh(z W1 + b1) W2 + b2) W3 + b3, the expression of Workloads.mlp (Linear's weight is [out, in]: W = weightᵀ).
let private mlpExpression (layers: int) =
    let v (n: string) = Expr.tensor n
    let mutable u = v "z"
    for i in 1 .. layers do
        let affine = Add(Expr.matmul u (v $"w{i}"), v $"b{i}")
        u <- if i < layers then Expr.tanh affine else affine
    u

/// The parameters of a Sequential of Linear layers as (name, value) for mlpExpression: w_i = weightᵀ, b_i = bias.
let private weightsOf (field: Module) =
    field.named_parameters()
    |> Seq.map (fun struct (_, p) -> p :> Tensor)
    |> Seq.chunkBySize 2
    |> Seq.mapi (fun i pair -> [ $"w{i + 1}", pair[0].detach().t().contiguous(); $"b{i + 1}", pair[1].detach().clone() ])
    |> Seq.concat
    |> List.ofSeq

/// A block solving the symbolic field with the adjoint: z(1) from x.
type private SymbolicBlock(field: SymbolicField, solver: ButcherTableau, control: StepControl) as this =
    inherit Module<Tensor, Tensor>("symbolic_block")
    do this.register_module("field", field)
    let mutable stats = SolveStatistics.Zero
    let mutable backward = BackwardStatistics()
    member _.LastStatistics = stats
    member _.LastBackward = backward
    override _.RegisterComponents() = ()
    override _.forward(x: Tensor) =
        let solution = Ode.solveWith Sensitivity.adjoint (field.Problem(x, [| 0.0; 1.0 |], null)) solver control
        stats <- solution.Statistics
        backward <- solution.Backward
        solution.Final

/// W2 with the symbolic field against W2 with modules, interleaved.
let w2 (repeats: int) =
    let block, trainer = Workloads.w2 2
    let symbolicField = SymbolicField.create (mlpExpression 3) "z" (weightsOf block.VectorField) None None
    let symbolicBlock = new SymbolicBlock(symbolicField, Solvers.dopri5, StepControl.adaptive 1e-5 1e-5)
    let symbolicTrainer = Workloads.Trainer(1024, symbolicBlock, 2)
    // Same readout weights on both sides, and one batch's gradients compared before timing.
    (use _ = torch.no_grad()
     Seq.iter2 (fun (t: Modules.Parameter) (s: Modules.Parameter) -> t.copy_(s) |> ignore) (symbolicTrainer.Readout.parameters()) (trainer.Readout.parameters()))
    let check =
        use _ = torch.NewDisposeScope()
        let x, y = trainer.Sample()
        let gradients (b: Module<Tensor, Tensor>) (t: Workloads.Trainer) =
            let loss = functional.cross_entropy(t.Readout.forward(b.forward x), y)
            torch.autograd.grad([| loss |], b.parameters() |> Seq.map (fun p -> p :> Tensor) |> Array.ofSeq) |> Array.ofSeq
        let byModules = gradients block trainer
        // The symbolic parameters are w_i = weightᵀ and b_i = bias, in the modules' order: compare entry by entry.
        let bySymbolic = gradients symbolicBlock symbolicTrainer
        Array.map2 (fun (m: Tensor) (sym: Tensor) ->
            let aligned = if m.dim() = 2L then sym.t() else sym
            ((m - aligned).abs().max() / m.abs().max()).ToDouble()) byModules bySymbolic
        |> Array.max
    let s = Measure.interleaved 5 repeats [| (fun () -> trainer.Step() |> ignore); (fun () -> symbolicTrainer.Step() |> ignore) |]
    let autograd, symbolic = s[0], s[1]
    let evaluations (f: SolveStatistics) (b: BackwardStatistics) = float (f.FunctionEvaluations + b.FunctionEvaluations)
    let nA = evaluations block.LastStatistics block.LastBackwardStatistics
    let nS = evaluations symbolicBlock.LastStatistics symbolicBlock.LastBackward
    [ timing "W2 autograd VJPs" "iteration" autograd "Dopri5 1e-5, adjoint, batch 1024, MLP 2-64-64-2 as modules"
      timing "W2 symbolic VJPs" "iteration" symbolic "the same weights as a SymbolicField: the adjoint's VJPs compiled symbolically"
      value "W2" "ratio symbolic / autograd (median)" (symbolic.Median / autograd.Median) "×" "same run, interleaved"
      value "W2" "ratio symbolic / autograd (best)" (symbolic.Min / autograd.Min) "×" "best run over best run"
      value "W2" "function evaluations (forward + backward, last iteration)" nS "" $"autograd side: {nA}"
      value "W2" "ratio per function evaluation (median)" ((symbolic.Median / nS) / (autograd.Median / nA)) "×" ""
      value "W2" "largest gradient difference, one batch" check "relative" "before timing, entry by entry per layer: the two sides compute the same gradients" ]

/// The CNF exact trace, symbolic against autograd, at d = 2, 16, 64.
let cnf (repeats: int) =
    [ for d in [ 2; 16; 64 ] do
        torch.manual_seed(int64 (7 + d)) |> ignore
        let field = Sequential(Linear(int64 d, 64L), torch.nn.Tanh(), Linear(64L, int64 d))
        let expression = mlpExpression 2
        let symbolicField = SymbolicField.create expression "z" (weightsOf field) None None
        // Inside a Sequential the closed form is hidden: that flow takes autograd's d passes.
        let symbolicFlow = new Cnf(symbolicField, d, Exact, Solvers.rk4, StepControl.steps 10)
        let autogradFlow = new Cnf(field, d, Exact, Solvers.rk4, StepControl.steps 10)
        use x = torch.randn([| 512L; int64 d |])
        let difference =
            use _ = torch.no_grad()
            use a = autogradFlow.LogProbability(x)
            use b = symbolicFlow.LogProbability(x)
            ((a - b).abs().max() / a.abs().max()).ToDouble()
        let inference (flow: Cnf) () =
            use _ = torch.NewDisposeScope()
            use _ = torch.no_grad()
            flow.LogProbability(x).sum().ToDouble() |> ignore
        let training (flow: Cnf) () =
            use _ = torch.NewDisposeScope()
            let loss = flow.LogProbability(x).mean().neg()
            loss.backward()
            for p in flow.parameters() do p.grad <- null
        let s = Measure.interleaved 2 repeats [| inference autogradFlow; inference symbolicFlow; training autogradFlow; training symbolicFlow |]
        printfn "  CNF d = %d: log p %.1f vs %.1f ms, with backward %.1f vs %.1f ms (autograd vs symbolic)" d s[0].Median s[1].Median s[2].Median s[3].Median
        yield timing $"CNF d = {d}" "log p, autograd exact trace" s[0] "batch 512, MLP d-64-d tanh, RK4 10 steps, no grad"
        yield timing $"CNF d = {d}" "log p, symbolic trace" s[1] "the same, closed-form trace"
        yield value $"CNF d = {d}" "ratio symbolic / autograd, log p (median)" (s[1].Median / s[0].Median) "×" "same run, interleaved"
        yield timing $"CNF d = {d}" "log p + backward, autograd exact trace" s[2] "training: gradients of −mean log p"
        yield timing $"CNF d = {d}" "log p + backward, symbolic trace" s[3] ""
        yield value $"CNF d = {d}" "ratio symbolic / autograd, log p + backward (median)" (s[3].Median / s[2].Median) "×" "same run, interleaved"
        yield value $"CNF d = {d}" "log p difference" difference "relative" "float32; the two traces agree" ]
