/// Scenarios run in a child process (Support/Child): each ends with exit code 0 when the library behaved (a typed
/// exception, or the right answer), 3 when it did not; an abort (SIGABRT, 134) or a hang fails the parent's test.
/// They were process aborts before the library's vector-Jacobian products went through Internal.SafeAutograd.
module NeuralOde.Tests.Reliability.ChildScenarios

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

let private f64 = torch.float64

/// Runs `action`; passes when it raises one of the expected (typed) exceptions, else says what happened.
let private expectTyped (expected: Type list) (action: unit -> unit) : int =
    try
        action ()
        printfn "no exception was raised"
        Child.CheckFailed
    with e ->
        if expected |> List.exists (fun t -> t.IsInstanceOfType e) then
            printfn "raised %s: %s" (e.GetType().Name) (e.Message.Split('\n').[0])
            Child.Passed
        else
            printfn "raised an untyped %s: %s" (e.GetType().FullName) e.Message
            Child.CheckFailed

/// A parameter derived outside the field (W = tanh(raw), raw declared): the adjoint's gradient for raw must equal
/// autograd's. (TorchSharp's autograd.grad freed W's graph on the first vector-Jacobian product; the second aborted.)
let derivedParameter () =
    use g = torch.Generator(1UL)
    let gradient (sensitivity: Sensitivity) =
        use scope = torch.NewDisposeScope()
        use raw = torch.randn([| 2L; 2L |], dtype = f64, generator = (torch.Generator(2UL))).requires_grad_(true)
        let w = raw.tanh()
        use x0 = Tensors.f64m [| [| 1.0; 0.5 |]; [| -0.3; 2.0 |] |]
        let problem = OdeProblem.create (fun _ x -> x.mm(w)) x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ raw ]
        use solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-10 1e-12)
        use loss = solution.Final.square().sum()
        Ode.backward loss
        Tensors.toArray raw.grad
    let reference = gradient Sensitivity.Autograd
    let adjoint = gradient Sensitivity.adjoint
    let interpolated = gradient Sensitivity.interpolatedAdjoint
    let e1, e2 = Tensors.relativeError adjoint reference, Tensors.relativeError interpolated reference
    printfn "relative error against autograd: adjoint %.2e, interpolated %.2e" e1 e2
    if e1 < 1e-6 && e2 < 1e-6 then Child.Passed else Child.CheckFailed

/// A field that modifies a tensor its own graph saved (h = tanh(x); h.add_(1)): autograd cannot differentiate it, and
/// the adjoint's backward must say so with an exception.
let inPlaceSavedTensor (sensitivity: Sensitivity) () =
    expectTyped [ typeof<InvalidOperationException>; typeof<OdeSolveException> ] (fun () ->
        use w = torch.ones([| 2L; 2L |], dtype = f64).requires_grad_(true)
        use x0 = Tensors.f64m [| [| 1.0; 0.5 |] |]
        let field: VectorField = fun _ x ->
            let h = (x.mm(w)).tanh()
            h.add_(torch.ones_like(h), Scalar.op_Implicit 1.0)
        let problem = OdeProblem.create field x0 [| 0.0; 1.0 |] |> OdeProblem.withParameters [ w ]
        use solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8)
        use loss = solution.Final.sum()
        Ode.backward loss)

/// Theorem 1 with ∂L/∂x(S) of the wrong shape: an ArgumentException naming terminalGradient.
let theorem1WrongTerminalShape () =
    expectTyped [ typeof<ArgumentException> ] (fun () ->
        use layer = new GalLinear(2L, 2L, Basis.fourier 1 1.0, f64)
        use x0 = Tensors.f64m [| [| 1.0; 0.5 |] |]
        use wrong = torch.ones([| 3L |], dtype = f64)
        let field: VectorField = fun s x -> (layer.forward(x, s)).tanh()
        InfiniteDimensionalGradient.along field (fun () -> layer.LastWeights) x0 (0.0, 1.0) wrong None [| 0.5 |] Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8)
        |> ignore)

/// A block whose constructor throws (bad times) is finalised later by TorchSharp's Module finaliser, which calls
/// Dispose(false): that must not touch the uninitialised block (it raised on the finaliser thread and ended the
/// process).
let failedConstructorFinaliser () =
    for _ in 1 .. 20 do
        try new NeuralOdeModel(TorchSharp.torch.nn.Linear(1L, 1L), Solvers.rk4, StepControl.steps 2, [| 0.0; 0.0 |]) |> ignore
        with :? ArgumentException -> ()
    GC.Collect()
    GC.WaitForPendingFinalizers()
    GC.Collect()
    printfn "finalised"
    Child.Passed

/// Saves checkpoints of a 2 MB model over and over to $NEURALODE_CHECKPOINT until killed (the parent kills it
/// mid-save); every save changes the weights, so old and new files differ.
let checkpointWriter () =
    let path = Environment.GetEnvironmentVariable "NEURALODE_CHECKPOINT"
    use model = TorchSharp.torch.nn.Linear(512L, 1024L, dtype = f64)
    let mutable epoch = 0
    while true do
        epoch <- epoch + 1
        (use _ = torch.no_grad() in model.weight.fill_(Scalar.op_Implicit (float epoch)) |> ignore)
        Checkpoint.save path model null { Epoch = epoch; Iteration = epoch; BestLoss = 0.0 }
    Child.Passed

/// The scenarios by name.
let all : Map<string, unit -> int> =
    Map(
        [ "derived-parameter", derivedParameter
          "inplace-saved-adjoint", inPlaceSavedTensor Sensitivity.adjoint
          "inplace-saved-interpolated", inPlaceSavedTensor Sensitivity.interpolatedAdjoint
          "theorem1-terminal-shape", theorem1WrongTerminalShape
          "failed-constructor-finaliser", failedConstructorFinaliser
          "checkpoint-writer", checkpointWriter
          "malformed-inputs", MalformedInputs.run 800 ]
        @ NeuralOde.Tests.Symbolic.DeepExpressionTests.scenarios
        @ Concurrency.scenarios)
