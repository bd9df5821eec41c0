/// Corollary 2 verified against autograd and the adjoint for random partitions (float64, FsCheck): the stacked
/// gradient per interval, ∫ over the interval of the Theorem 1 gradient, equals the gradient of the stacked solve.
module NeuralOde.Tests.Sensitivity.StackedGradientTests

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

type StackedCase =
    { Seed: int; Cuts: float list; Dim: int; Hidden: int; Batch: int; Integral: bool }
    member c.Partition = Array.concat [ [| 0.0 |]; c.Cuts |> List.sort |> List.distinct |> Array.ofList; [| 1.0 |] ]

let private caseGen =
    gen {
        let! seed = Gen.choose (0, 1_000_000)
        let! cuts = Gen.listOfLength 2 (Gen.choose (10, 90) |> Gen.map (fun i -> float i / 100.0)) |> Gen.map (List.take 2)
        let! pieces = Gen.choose (0, 2)
        let! dim = Gen.choose (1, 2)
        let! hidden = Gen.choose (2, 3)
        let! batch = Gen.choose (1, 2)
        let! integral = Gen.elements [ false; true ]
        return { Seed = seed; Cuts = List.truncate pieces cuts; Dim = dim; Hidden = hidden; Batch = batch; Integral = integral }
    }

type Arbitraries =
    static member Case() = Arb.fromGen caseGen

let private tight = Sensitivities.tight
let private runningLoss = Sensitivities.runningLoss
let private config = { FsCheckConfig.defaultConfig with maxTest = 8; arbitrary = [ typeof<Arbitraries> ] }

[<Tests>]
let tests =
    testList "Sensitivity/stacked" [
        testPropertyWithConfig config "Corollary 2: the stacked gradient per interval equals autograd and the adjoint" <| fun (c: StackedCase) ->
            let partition = c.Partition
            use g = torch.Generator(uint64 c.Seed)
            use layer = new StackedLinear(int64 c.Dim, int64 c.Hidden, partition, torch.float64)
            (use _ = torch.no_grad()
             use init = torch.randn(layer.Weights.shape, dtype = torch.float64, generator = g)
             layer.Weights.copy_(init * 0.8) |> ignore)
            use w2 = torch.randn([| int64 c.Hidden; int64 c.Dim |], dtype = torch.float64, generator = g) * 0.7
            use x0 = torch.randn([| int64 c.Batch; int64 c.Dim |], dtype = torch.float64, generator = g)
            let fieldFor (i: int) : VectorField = fun _ x -> layer.forward(x, i).tanh().matmul(w2)
            let loss = if c.Integral then Some runningLoss else None
            let gradientBy (sensitivity: Sensitivity) =
                layer.Weights.grad |> Option.ofObj |> Option.iter (fun gr -> gr.zero_() |> ignore)
                let mutable total = torch.zeros([||], dtype = torch.float64)
                let states = ResizeArray<torch.Tensor>([ x0 ])
                for i in 0 .. partition.Length - 2 do
                    let problem =
                        OdeProblem.create (fieldFor i) states[i] [| partition[i]; partition[i + 1] |]
                        |> OdeProblem.withParameters [ layer.Weights ]
                    let problem = match loss with Some l -> problem |> OdeProblem.withIntegralLoss l | None -> problem
                    let solution = Ode.solveWith sensitivity problem Solvers.dopri5 tight
                    solution.Integral |> Option.iter (fun q -> total <- total + q)
                    states.Add(solution.Final)
                use l = states[states.Count - 1].square().sum() + total
                l.backward()
                Tensors.toArray layer.Weights.grad
            let reference = gradientBy Sensitivity.Autograd
            let adjoint = gradientBy Sensitivity.adjoint
            Expect.isLessThan (Tensors.relativeError adjoint reference) 1e-6 $"adjoint vs autograd for {partition}"
            use final = (use _ = torch.no_grad() in Stacked.solve fieldFor partition x0 [] Sensitivity.Autograd Solvers.dopri5 tight)
            use zS = final[int64 (partition.Length - 1)]
            use terminal = zS * 2.0
            use corollary2 = InfiniteDimensionalGradient.stacked fieldFor (fun () -> layer.LastWeights) partition x0 terminal loss 1e-9 Solvers.dopri5 tight
            let error = Tensors.relativeError (Tensors.toArray corollary2) reference
            Expect.isLessThan error 1e-6 $"Corollary 2 vs autograd: {error:E2} for partition %A{partition}, %A{c}"

        test "StackedLinear uses the weights of the interval it is given, and refuses others" {
            use layer = new StackedLinear(1L, 1L, [| 0.0; 0.5; 1.0 |], torch.float64)
            use values = torch.tensor([| 2.0; 0.0; 3.0; 1.0 |], dtype = torch.float64).reshape(2L, 2L)
            let _ = (use _ = torch.no_grad() in layer.Weights.copy_(values))
            use x = torch.ones([| 1L; 1L |], dtype = torch.float64)
            Expect.equal (Tensors.toArray (layer.forward(x, 0))) [| 2.0 |] "interval 0: 2x + 0"
            Expect.equal (Tensors.toArray (layer.forward(x, 1))) [| 4.0 |] "interval 1: 3x + 1"
            let e = Raises.raises<System.ArgumentOutOfRangeException> (fun () -> layer.forward(x, 2) |> ignore)
            Expect.equal e.ParamName "interval" "names the argument"
        }
    ]
