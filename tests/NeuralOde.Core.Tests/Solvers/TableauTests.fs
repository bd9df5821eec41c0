module NeuralOde.Tests.Solvers.TableauTests

open Expecto
open NeuralOde.Core
open NeuralOde.Tests.Support.Raises

let private continuousWeights (t: ButcherTableau) =
    match t.Dense with
    | DenseOutput.Continuous w -> Some w
    | DenseOutput.Hermite -> None

[<Tests>]
let tests =
    testList "Solvers/Tableau" [
        for t in Solvers.all do
            test $"{t.Name}: row sums equal c, weights sum to 1, error weights to 0" {
                t.A |> Array.iteri (fun i row -> Expect.floatClose Accuracy.veryHigh (Array.sum row) t.C[i] $"row {i}")
                Expect.floatClose Accuracy.veryHigh (Array.sum t.B) 1.0 "Σb"
                t.E |> Option.iter (fun e -> Expect.isLessThan (abs (Array.sum e)) 1e-12 "Σe")
            }
            match continuousWeights t with
            | Some w ->
                test $"{t.Name}: continuous extension sums to θ and reproduces b at θ = 1" {
                    for theta in [ 0.1; 0.25; 0.5; 0.9 ] do
                        Expect.floatClose Accuracy.high (Array.sum (w theta)) theta $"Σ b_i({theta})"
                    let atOne = w 1.0
                    Array.iter2 (fun a b -> Expect.floatClose Accuracy.high a b "b_i(1) = b_i") atOne[0 .. t.Stages - 1] t.B
                }
            | None -> ()
        test "FSAL is derived from the coefficients" {
            let fsal = Solvers.all |> List.filter (fun t -> t.Fsal) |> List.map (fun t -> t.Name)
            Expect.equal fsal [ "bosh3"; "dopri5"; "tsit5" ] "exactly the FSAL methods"
            Expect.isFalse Solvers.dopri8.Fsal "dopri8's last stage is not at the solution"
        }
        test "stage counts" {
            Expect.equal (Solvers.all |> List.map (fun t -> t.Stages)) [ 1; 2; 2; 4; 4; 7; 7; 13 ] "stages"
        }
        test "an inconsistent tableau is refused with the reason" {
            let ex =
                raises<System.ArgumentException> (fun () ->
                    ButcherTableau.create "broken" 2 None [| 0.0; 0.5 |] [| [||]; [| 0.4 |] |] [| 0.0; 1.0 |] None
                        DenseOutput.Hermite "none" |> ignore)
            Expect.stringContains ex.Message "row 1 of A sums to 0.4" "names the failing row"
        }
        test "a tableau with a non-finite coefficient is refused, naming the coefficient" {
            let heun (c: float[]) (a: float[][]) (b: float[]) (e: float[] option) =
                ButcherTableau.create "heun-nan" 2 (e |> Option.map (fun _ -> 1)) c a b e DenseOutput.Hermite "none" |> ignore
            let refused (argument: string) (coefficient: string) (build: unit -> unit) =
                let ex = raises<System.ArgumentException> build
                Expect.equal ex.ParamName argument "names the argument"
                Expect.stringContains ex.Message coefficient "names the coefficient and its value"
            refused "a" "a[1][0] is NaN" (fun () -> heun [| 0.0; 1.0 |] [| [||]; [| nan |] |] [| 0.5; 0.5 |] None)
            refused "c" "c[1] is NaN" (fun () -> heun [| 0.0; nan |] [| [||]; [| 1.0 |] |] [| 0.5; 0.5 |] None)
            refused "b" "b[0] is NaN" (fun () -> heun [| 0.0; 1.0 |] [| [||]; [| 1.0 |] |] [| nan; 0.5 |] None)
            refused "e" "e[1] is Infinity" (fun () -> heun [| 0.0; 1.0 |] [| [||]; [| 1.0 |] |] [| 0.5; 0.5 |] (Some [| 0.5; infinity |]))
        }
        test "a continuous extension that is NaN inside the step is refused, though right at θ = 0 and 1" {
            // Heun's b_i(θ) would be [θ − θ²/2, θ²/2]; this one agrees at the ends only.
            let weights (theta: float) = if theta = 0.0 then [| 0.0; 0.0 |] elif theta = 1.0 then [| 0.5; 0.5 |] else [| nan; nan |]
            let ex =
                raises<System.ArgumentException> (fun () ->
                    ButcherTableau.create "heun-dense" 2 None [| 0.0; 1.0 |] [| [||]; [| 1.0 |] |] [| 0.5; 0.5 |] None
                        (DenseOutput.Continuous weights) "none" |> ignore)
            Expect.equal ex.ParamName "dense" "names the argument"
            Expect.stringContains ex.Message "b_0(0.25) is NaN" "names the weight, θ and the value"
        }
        test "byName finds solvers and lists the known ones otherwise" {
            Expect.equal (Solvers.byName "Dopri5").Name "dopri5" "case-insensitive"
            let ex = raises<System.ArgumentException> (fun () -> Solvers.byName "rk45" |> ignore)
            Expect.stringContains ex.Message "tsit5" "lists the known solvers"
        }
    ]
