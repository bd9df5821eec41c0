/// The adjoint methods (backsolve and interpolated) as one TorchSharp custom autograd function, whatever the states
/// they run on: the forward pass solves without building a graph and keeps only the states at checkpoints; the backward
/// pass is the sweep (Sensitivity/AdjointSweep.fs), on tensors (TensorAdjoint) or on a compiled backend's buffers
/// (CompiledAdjoint). Memory is constant in the number of steps (backsolve) or bounded by the steps between two
/// checkpoints (interpolated). A failure of the backward pass is recorded and makes libtorch stop the pass
/// (Sensitivity/BackwardFailure.fs): Ode.backward raises it.
module internal NeuralOde.Core.AdjointFunction

open System.Collections.Generic
open TorchSharp

type Tensor = torch.Tensor

/// What the autograd function carries besides its tensor inputs.
type Config =
    { Run: AdjointSweep.IAdjointRun
      Shape: int64[]
      Parameters: Tensor[]
      HasLoss: bool
      /// The output times as a tensor when their gradient is wanted, else null.
      TimeTensor: Tensor
      /// The tensors the forward pass made and handed to TorchSharp, which wraps its outputs anew and keeps its own
      /// reference to what is saved for the backward: the caller of `apply` frees these when it returns.
      Handed: List<Tensor> }

/// What solves of the same field share: its first parameter tensor (a module's parameters are the same objects in
/// every solve), or nothing for a field without declared parameters.
let private gateKey (cfg: Config) : obj = if cfg.Parameters.Length > 0 then box cfg.Parameters[0] else null

type OdeAdjoint() =
    inherit torch.autograd.MultiTensorFunction<OdeAdjoint>()

    override _.Name = "OdeAdjoint"

    /// vars: [| Config; x0; time tensor or null; parameters...; sentinel |] → [| states at the output times; ∫ l dt |].
    override this.forward(ctx, vars) =
        let cfg = vars[0] :?> Config
        Internal.SolveGate.run (gateKey cfg) (fun () ->
            let x0 = vars[1] :?> Tensor
            let outputs, integral, saved = cfg.Run.Forward x0
            if not (isNull saved) then ctx.save_for_backward(List<Tensor>([ saved ]))
            ctx.save_data("config", cfg)
            cfg.Handed.AddRange [ outputs; integral ]
            if not (isNull saved) then cfg.Handed.Add saved
            List<Tensor>([ outputs; integral ]))

    override this.backward(ctx, grads) =
        let cfg = ctx.get_data("config") :?> Config
        // Solves that share parameter tensors run their adjoint passes one at a time (Internal/SolveGate).
        Internal.SolveGate.run (gateKey cfg) (fun () -> this.BackwardGuarded(ctx, grads))

    member private _.BackwardGuarded(ctx: torch.autograd.AutogradContext, grads: List<Tensor>) : List<Tensor> =
        // A .NET exception must not leave this callback (see BackwardFailure): record it and make libtorch fail.
        // The config and the incoming gradients' dtype and device are read first, while those gradients are alive.
        let cfg = ctx.get_data("config") :?> Config
        let mutable like = None
        try
            like <- Some(grads[0].dtype, grads[0].device)
            // TorchSharp makes a wrapper for each incoming gradient and each unpacked saved tensor and leaves them to us.
            let savedList = ctx.get_saved_variables()
            use saved = if savedList.Count > 0 then savedList[0] else null
            use gStates = grads[0]
            use gIntegral = grads[1]
            let weight = if cfg.HasLoss then gIntegral.ToDouble() else 0.0
            let gx0, gTimes, gParams = cfg.Run.Backward(saved, gStates, weight)
            let timeTensor = cfg.TimeTensor
            let gTime =
                if isNull timeTensor then null
                else (use host = torch.tensor(gTimes, dtype = torch.float64) in host.``to``(timeTensor.dtype, timeTensor.device))
            // The last input is Ode's sentinel, which gets no gradient when the pass succeeds.
            List<Tensor>(Seq.concat [ [ null; gx0; gTime ]; List.ofArray gParams; [ null ] ])
        with e ->
            BackwardFailure.record e
            let nulls () = List<Tensor>(Array.create (4 + cfg.Parameters.Length) (null: Tensor))
            match like with
            | None -> nulls ()
            | Some(dtype, device) ->
                try
                    // Every tensor input gets a gradient libtorch rejects: whichever it checks first stops the pass.
                    let rejected (shape: int64[]) = BackwardFailure.rejectedGradient shape dtype device
                    let time = if isNull cfg.TimeTensor then null else rejected cfg.TimeTensor.shape
                    List<Tensor>(Seq.concat [ [ null; rejected cfg.Shape; time ]
                                              List.ofArray (cfg.Parameters |> Array.map (fun p -> rejected p.shape))
                                              [ rejected [| 1L |] ] ])
                with _ -> nulls ()
