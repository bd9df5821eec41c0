/// Kennedy & Carpenter's IMEX methods (kenCarp3/4/5) on split problems f = f_E + f_I (float64): the tableaux' order
/// conditions for each part and the coupling conditions between them; fitted orders at fixed steps on a split linear
/// system with a closed-form solution; a stiff reaction–diffusion problem against SciPy's Radau, with far fewer steps
/// than dopri5 and a Newton iteration that differentiates f_I alone; the unsplit problem as the split (0, f); gradients
/// by autograd against central differences; a part of the wrong shape named with the time.
module NeuralOde.Tests.Implicit.KenCarpTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Raises
open NeuralOde.Tests.Implicit.StiffProblems
open NeuralOde.Tests.Implicit.EsdirkTableauTests

let private imexSolvers = [ Solvers.kenCarp3; Solvers.kenCarp4; Solvers.kenCarp5 ]

/// The explicit part's full s × s matrix (zero diagonal).
let private explicitMatrix (t: ButcherTableau) =
    Array.init t.Stages (fun i -> Array.init t.Stages (fun j -> if j < i then t.ExplicitA.Value[i][j] else 0.0))

/// A rooted tree whose every edge to a child carries one of the parts' matrices (a bicoloured tree of an additive
/// method: Kennedy & Carpenter 2003, §3).
type private ColouredTree = Coloured of (float[][] * ColouredTree) list

/// Every colouring of a tree's edges with the given matrices.
let rec private colourings (matrices: float[][] list) (Node children) : ColouredTree list =
    children
    |> List.fold (fun partials child ->
        [ for partial in partials do
            for m in matrices do
                for c in colourings matrices child do
                    yield partial @ [ (m, c) ] ]) [ [] ]
    |> List.map Coloured

/// Φ_i for every stage i: Π over the root's edges of Σ_j m_ij Φ_j(subtree).
let rec private phi (s: int) (Coloured children) : float[] =
    children |> List.fold (fun (acc: float[]) (m, child) ->
        let p = phi s child
        Array.init s (fun i -> acc[i] * Array.fold2 (fun sum mij pj -> sum + mij * pj) 0.0 m[i] p)) (Array.create s 1.0)

/// The largest |bᵀΦ − 1/γ(tree)| over the trees of order n with every colouring from `matrices`.
let private colouredResidual (matrices: float[][] list) (b: float[]) (n: int) =
    [ for tree in trees n do
        for c in colourings matrices tree do
            yield abs (Array.fold2 (fun sum bi pi -> sum + bi * pi) 0.0 b (phi b.Length c) - 1.0 / density tree) ]
    |> List.max

// The split linear system with a forcing: the stiff part A x (eigenvalues −1 and −1000, StiffProblems.stiffLinear) and
// a non-stiff part acting on the slow mode, f_E(t, x) = (β/2) [[1, 1], [1, 1]] x + cos t (1, 1). In u = (x1 + x2)/2,
// v = (x1 − x2)/2: u' = (β − 1) u + cos t and v' = −1000 v, so from x0 = (1, 1) (v0 = 0) the stiff mode holds only
// rounding (it must stay damped) while the steps are far outside an explicit method's stability region.
let private beta = 0.5
let private slowCoupling = Problems.linear [| [| beta / 2.0; beta / 2.0 |]; [| beta / 2.0; beta / 2.0 |] |]
let private forced: VectorField = fun t x -> TensorOps.addConstant (slowCoupling t x) (cos t)

/// u(t) = (u0 − p(0)) e^{kt} + p(t) with k = β − 1 and the particular solution p(t) = (sin t − k cos t)/(k² + 1) of
/// u' = k u + cos t; x = (u, u).
let private forcedExact (u0: float) (t: float) =
    let k = beta - 1.0
    let particular t = (sin t - k * cos t) / (k * k + 1.0)
    let u = (u0 - particular 0.0) * exp (k * t) + particular t
    [| u; u |]

let private endError (problem: torch.Tensor -> OdeProblem) (exact: float[]) (solver: ButcherTableau) (n: int) =
    use x = Tensors.f64 [| 1.0; 1.0 |]
    use solution = Ode.solve (problem x) solver (StepControl.steps n)
    use final = solution.Final
    Array.map2 (fun a b -> abs (a - b)) (Tensors.toArray final) exact |> Array.max

/// A rotation ω (x2, −x1) as the non-stiff part, with a mildly stiff part (eigenvalues −1 and −10): the rotation moves
/// both modes. (With the stiff mode at −1000 and h·1000 ≫ 1 the fitted orders fall towards the stage order 2: the
/// order reduction of IMEX methods on singularly perturbed problems, Kennedy & Carpenter 2003, §2.6.)
let private rotation = [| [| 0.0; 2.0 |]; [| -2.0; 0.0 |] |]
let private mildlyStiff = [| [| -5.5; 4.5 |]; [| 4.5; -5.5 |] |]

// Fisher–KPP reaction–diffusion u_t = D u_xx + r u (1 − u) on (0, 1), u = 0 at both ends, 32 interior points: the
// diffusion (stiffest eigenvalue ≈ −4356) is f_I, the reaction f_E. As in stiff_references.py.
let private fisherPoints = 32
let private fisherRate = 20.0

/// D/dx² times the second-difference matrix (symmetric, so u ↦ u L is the diffusion on a row u).
let private laplacian () =
    let dx = 1.0 / float (fisherPoints + 1)
    let scale = 1.0 / (dx * dx)
    Tensors.f64m (Array.init fisherPoints (fun i -> Array.init fisherPoints (fun j -> if i = j then -2.0 * scale elif abs (i - j) = 1 then scale else 0.0)))

let private diffusion (l: torch.Tensor) : VectorField = fun _ u -> u.matmul(l)
let private reaction: VectorField = fun _ u -> TensorOps.scale (u.mul(TensorOps.addConstant (TensorOps.scale u -1.0) 1.0)) fisherRate

let private fisherX0 () =
    let dx = 1.0 / float (fisherPoints + 1)
    Tensors.f64 (Array.init fisherPoints (fun i -> 0.5 * sin (System.Math.PI * dx * float (i + 1))))

/// SciPy Radau, rtol = 1e-12, atol = 1e-14 (stiff_references.py): u at points 3, 8, 16, 24 at t = 0.5 and 1.
let private fisherTimes = [| 0.0; 0.5; 1.0 |]
let private fisherPicked = [| 3L; 8L; 16L; 24L |]
let private fisherReference =
    [| [| 0.23814001123329448; 0.4619812539733434; 0.5876921307289059; 0.42581152766343505 |]
       [| 0.23848359551082451; 0.4626166168025611; 0.5884686772598987; 0.4264028305205025 |] |]

/// The largest relative error of the picked points at the outputs.
let private fisherError (solution: OdeSolution) =
    fisherReference |> Array.mapi (fun k row ->
        use s = solution.States.select(0L, int64 (k + 1))
        let values = Tensors.toArray s
        Array.map2 (fun i r -> abs (values[int i] - r) / abs r) fisherPicked row |> Array.max) |> Array.max

[<Tests>]
let tests =
    testList "Implicit/kencarp" [
        for t in imexSolvers do
            let explicitA, implicitA = explicitMatrix t, fullMatrix t
            let bHat = Array.map2 (-) t.B t.E.Value
            let p, pHat = t.Order, t.EmbeddedOrder.Value
            test $"{t.Name}: each part and every coupling of the two have order {p}, the embedded weights {pHat}" {
                for n in 1 .. p do
                    Expect.isLessThan (colouredResidual [ explicitA ] t.B n) 1e-12 $"explicit part, trees of order {n}"
                    Expect.isLessThan (colouredResidual [ implicitA ] t.B n) 1e-12 $"implicit part, trees of order {n}"
                    Expect.isLessThan (colouredResidual [ explicitA; implicitA ] t.B n) 1e-12 $"coupled trees of order {n}"
                for n in 1 .. pHat do
                    Expect.isLessThan (colouredResidual [ explicitA; implicitA ] bHat n) 1e-12 $"embedded, coupled trees of order {n}"
                Expect.isGreaterThan (colouredResidual [ explicitA; implicitA ] t.B (p + 1)) 1e-6 $"order {p + 1} fails"
                Expect.isGreaterThan (colouredResidual [ explicitA; implicitA ] bHat (pHat + 1)) 1e-6 $"embedded order {pHat + 1} fails"
            }
            test $"{t.Name}: the coupling conditions of order 3 written out (Σ b_i a^X_ij c_j = 1/6)" {
                for a in [ explicitA; implicitA ] do
                    let value = Array.sum (Array.init t.Stages (fun i -> t.B[i] * Array.fold2 (fun sum aij cj -> sum + aij * cj) 0.0 a[i] t.C))
                    Expect.floatClose Accuracy.veryHigh value (1.0 / 6.0) "Σ b_i a_ij c_j"
                for i in 1 .. t.Stages - 1 do
                    Expect.floatClose Accuracy.veryHigh (Array.sum explicitA[i]) t.C[i] $"explicit row {i} sums to c_{i}"
                Expect.isTrue t.IsImex "an IMEX method"
                Expect.isTrue t.IsImplicit "implicit (Newton on the stiff part)"
            }
        test "createImex names the explicit part's failing row" {
            let ex =
                raises<System.ArgumentException> (fun () ->
                    ButcherTableau.createImex "broken" 2 1 0.5 [| 0.0; 1.0; 1.0 |] [| [||]; [| 0.9 |]; [| 0.5; 0.5 |] |]
                        [| [||]; [| 0.5 |]; [| 0.25; 0.25 |] |] [| 0.25; 0.25; 0.5 |] [| 0.0; -0.25; 0.25 |] "none" |> ignore)
            Expect.stringContains ex.Message "explicit part" "names the part"
            Expect.stringContains ex.Message "row 1 of A" "names the row"
        }
        test "the closed form of the forced split system agrees with the matrix exponential of the augmented system" {
            // x' = M x + cos t (1, 1) as the linear system (x, cos t, sin t)' with the rotation block for (cos, sin).
            let m = Array.map2 (Array.map2 (+)) stiffLinear [| [| beta / 2.0; beta / 2.0 |]; [| beta / 2.0; beta / 2.0 |] |]
            let augmented =
                [| [| m[0][0]; m[0][1]; 1.0; 0.0 |]; [| m[1][0]; m[1][1]; 1.0; 0.0 |]
                   [| 0.0; 0.0; 0.0; -1.0 |]; [| 0.0; 0.0; 1.0; 0.0 |] |]
            let viaExpm = Reference.linearSolution augmented [| 1.0; 1.0; 1.0; 0.0 |] 0.0 0.7
            let error = Array.map2 (fun a b -> abs (a - b)) (forcedExact 1.0 0.7) viaExpm[0 .. 1] |> Array.max
            Expect.isLessThan error 1e-10 "the closed form"
        }
        for solver in imexSolvers do
            test $"{solver.Name}: fitted order {solver.Order} at fixed steps on the forced stiff split system (h·1000 from 30 to 250)" {
                // kencarp5 reaches its asymptotic rate from 16 steps on (and rounding below 1e-12 past 64).
                let ns = if solver.Order = 5 then [ 16; 32; 64 ] else [ 8; 16; 32; 64 ]
                let hs = ns |> List.map (fun n -> 2.0 / float n) |> Array.ofList
                let problem x = OdeProblem.createSplit forced (Problems.linear stiffLinear) x [| 0.0; 2.0 |]
                let errors = ns |> List.map (endError problem (forcedExact 1.0 2.0) solver) |> Array.ofList
                let slope = Tensors.logLogSlope hs errors
                printfn $"{solver.Name} forced stiff split: fitted order {slope:F3}, errors %A{errors}"
                Expect.isLessThan (abs (slope - float solver.Order)) 0.3 $"fitted order {slope:F3} for errors %A{errors}"
            }
            test $"{solver.Name}: fitted order {solver.Order} at fixed steps with a rotation moving both modes (eigenvalues −1, −10)" {
                let ns = [ 32; 64; 128; 256 ]
                let hs = ns |> List.map (fun n -> 2.0 / float n) |> Array.ofList
                let problem x = OdeProblem.createSplit (Problems.linear rotation) (Problems.linear mildlyStiff) x [| 0.0; 2.0 |]
                let exact = Reference.linearSolution (Array.map2 (Array.map2 (+)) mildlyStiff rotation) [| 1.0; 1.0 |] 0.0 2.0
                let errors = ns |> List.map (endError problem exact solver) |> Array.ofList
                let slope = Tensors.logLogSlope hs errors
                printfn $"{solver.Name} rotation + mildly stiff: fitted order {slope:F3}, errors %A{errors}"
                Expect.isLessThan (abs (slope - float solver.Order)) 0.3 $"fitted order {slope:F3} for errors %A{errors}"
            }
        for solver in imexSolvers do
            test $"{solver.Name}: Fisher–KPP (diffusion implicit, reaction explicit) within 1e-4 of Radau" {
                use l = laplacian ()
                use x0 = fisherX0 ()
                use solution = Ode.solve (OdeProblem.createSplit reaction (diffusion l) x0 fisherTimes) solver (adaptive 1e-6 1e-9)
                let error = fisherError solution
                let s = solution.Statistics
                printfn $"{solver.Name} Fisher–KPP (rtol 1e-6, atol 1e-9): relative error {error:G3}, {s.AcceptedSteps} accepted, {s.RejectedSteps} rejected, {s.FunctionEvaluations} evaluations"
                Expect.isLessThan error 1e-4 "against Radau"
            }
        test "kencarp4: Fisher–KPP in far fewer steps than dopri5, its Newton differentiating the diffusion only" {
            use l = laplacian ()
            use x0 = fisherX0 ()
            // Calls with an input that requires grad are the Jacobian's (the solve itself records no graph).
            let mutable reactionDifferentiated = 0
            let mutable diffusionDifferentiated = 0
            let watchedReaction: VectorField = fun t u -> (if u.requires_grad then reactionDifferentiated <- reactionDifferentiated + 1); reaction t u
            let watchedDiffusion: VectorField = fun t u -> (if u.requires_grad then diffusionDifferentiated <- diffusionDifferentiated + 1); diffusion l t u
            use imex = Ode.solve (OdeProblem.createSplit watchedReaction watchedDiffusion x0 fisherTimes) Solvers.kenCarp4 (adaptive 1e-6 1e-9)
            use dopri = Ode.solve (OdeProblem.create (fun t u -> TensorOps.plus (reaction t u) (diffusion l t u)) x0 fisherTimes) Solvers.dopri5 (adaptive 1e-6 1e-9)
            let a, b = imex.Statistics.AcceptedSteps, dopri.Statistics.AcceptedSteps
            printfn $"Fisher–KPP [0, 1], rtol 1e-6, atol 1e-9: kencarp4 {a} accepted ({imex.Statistics.FunctionEvaluations} part evaluations), dopri5 {b} accepted ({dopri.Statistics.FunctionEvaluations} evaluations, error {fisherError dopri:G3}); Jacobian evaluations of the diffusion by {diffusionDifferentiated} calls"
            Expect.isLessThan (float a * 10.0) (float b) "more than 10 times fewer accepted steps"
            Expect.equal reactionDifferentiated 0 "the reaction is never differentiated"
            Expect.isGreaterThan diffusionDifferentiated 0 "the diffusion's Jacobian by autograd"
        }
        test "kencarp4: a Jacobian of your own is the stiff part's (the diffusion matrix)" {
            use l = laplacian ()
            use x0 = fisherX0 ()
            let problem = OdeProblem.createSplit reaction (diffusion l) x0 fisherTimes
            let own = Solvers.withNewton { NewtonOptions.defaults with Jacobian = Some(fun _ _ -> l.t().contiguous()) } Solvers.kenCarp4
            use viaOwn = Ode.solve problem own (adaptive 1e-6 1e-9)
            use viaAutograd = Ode.solve problem Solvers.kenCarp4 (adaptive 1e-6 1e-9)
            Expect.isLessThan (Tensors.maxAbsDiff viaOwn.States viaAutograd.States) 1e-10 "same solution"
            Expect.isLessThan (fisherError viaOwn) 1e-4 "against Radau"
        }
        for solver in [ Solvers.kenCarp4; Solvers.kvaerno5 ] do
            test $"{solver.Name}: the unsplit problem agrees with the split (0, f) and a Kværnø solve of a split problem with the sum" {
                use l = laplacian ()
                use x0 = fisherX0 ()
                let whole: VectorField = fun t u -> TensorOps.plus (reaction t u) (diffusion l t u)
                use unsplit = Ode.solve (OdeProblem.create whole x0 fisherTimes) solver (adaptive 1e-6 1e-9)
                use zeroSplit = Ode.solve (OdeProblem.createSplit (fun _ u -> torch.zeros_like u) whole x0 fisherTimes) solver (adaptive 1e-6 1e-9)
                Expect.isLessThan (Tensors.maxAbsDiff unsplit.States zeroSplit.States) 1e-12 "(0, f) is f"
                Expect.equal zeroSplit.Statistics.AcceptedSteps unsplit.Statistics.AcceptedSteps "the same steps"
                if not solver.IsImex then
                    use split = Ode.solve (OdeProblem.createSplit reaction (diffusion l) x0 fisherTimes) solver (adaptive 1e-6 1e-9)
                    Expect.isLessThan (Tensors.maxAbsDiff unsplit.States split.States) 1e-12 "the sum"
            }
        test "kencarp4: dL/dθ of a parameter in each part and dL/dx0 by autograd match central differences" {
            // L = Σ w ⊙ x(1) for x' = ω R x + s A x, 16 fixed steps, at (ω, s) = (2, 1), x0 = (1, 0.5).
            let loss (omegaT: torch.Tensor) (scaleT: torch.Tensor) (x0: torch.Tensor) =
                let rotationField = Problems.linear [| [| 0.0; 1.0 |]; [| -1.0; 0.0 |] |]
                let stiffField = Problems.linear stiffLinear
                let nonStiff: VectorField = fun t x -> (rotationField t x).mul(omegaT)
                let stiff: VectorField = fun t x -> (stiffField t x).mul(scaleT)
                use solution = Ode.solve (OdeProblem.createSplit nonStiff stiff x0 [| 0.0; 1.0 |]) Solvers.kenCarp4 (StepControl.steps 16)
                use w = Tensors.f64 [| 1.0; 2.0 |]
                use final = solution.Final
                final.mul(w).sum()
            let valueAt (point: torch.Tensor) =
                let v = Tensors.toArray point
                use o = torch.tensor(v[0], dtype = torch.float64)
                use s = torch.tensor(v[1], dtype = torch.float64)
                use x = Tensors.f64 [| v[2]; v[3] |]
                use l = loss o s x
                l.ToDouble()
            use o = torch.tensor(2.0, dtype = torch.float64, requires_grad = true)
            use s = torch.tensor(1.0, dtype = torch.float64, requires_grad = true)
            use x0 = (Tensors.f64 [| 1.0; 0.5 |]).requires_grad_(true)
            use l = loss o s x0
            l.backward()
            let autograd = Array.append [| o.grad.ToDouble(); s.grad.ToDouble() |] (Tensors.toArray x0.grad)
            let fd = centralDifferences 1e-6 valueAt [| 2.0; 1.0; 1.0; 0.5 |]
            printfn $"kencarp4 gradients: autograd %A{autograd}, central differences %A{fd}"
            Array.iter2 (fun a f -> Expect.floatClose { absolute = 1e-7; relative = 1e-6 } a f "dL/d(ω, s, x0)") autograd fd
        }
        test "kencarp4: a fixed-step split solve keeps as many tensors alive at step 190 as at step 10" {
            let counts = ResizeArray<int64>()
            let rotationField = Problems.linear rotation
            let counted: VectorField = fun t x ->
                counts.Add(int64 DisposeScopeManager.Statistics.ThreadTotalLiveCount)
                rotationField t x
            do
                use _ = torch.no_grad()
                use x = Tensors.f64 [| 1.0; 1.0 |]
                use solution = Ode.solve (OdeProblem.createSplit counted (Problems.linear mildlyStiff) x [| 0.0; 1.0 |]) Solvers.kenCarp4 (StepControl.steps 200)
                ()
            // f_E per step: at the step's start, at stages 2 … 6, and in f(t + h, y1) (the sum) — 7, after f(t0, x0).
            let period = Solvers.kenCarp4.Stages + 1
            Expect.equal counts.Count (1 + 200 * period - 1) "f_E's evaluations (none at the end: no step follows)"
            let starts = [| for k in 20 .. 180 -> counts[1 + k * period] |]
            Expect.equal (Array.max starts - Array.min starts) 0L $"live tensors at each step's start: {starts[0]} at step 20, {starts[160]} at step 180"
        }
        test "kencarp4: an event on a split problem, x' = −1000 (x − cos t) (implicit) − sin t (explicit), at x = 0.5" {
            // From x0 = 1 the solution is cos t exactly, so x = 0.5 (falling) at t* = π/3. The same with the forcing in
            // f_I: the explicit forcing is as accurate, in about ten times more steps — its stages' defect in the stiff
            // limit (Σ_j a^E_ij c_j ≠ c_i²/2 at stage 2) shows in the embedded error estimate.
            let k = 1000.0
            use x0 = Tensors.f64 [| 1.0 |]
            let forcing: VectorField = fun t x -> TensorOps.addConstant (torch.zeros_like x) (-(sin t))
            let relaxation: VectorField = fun t x -> TensorOps.scale (TensorOps.addConstant x (-(cos t))) -k
            let event = Events.create "x = 0.5" EventDirection.Falling (fun _ x -> TensorOps.addConstant (x.select(0L, 0L)) -0.5) |> Events.terminal
            let whole: VectorField = fun t x -> TensorOps.plus (forcing t x) (relaxation t x)
            let steps =
                [ for name, nonStiff, stiff in [ "forcing explicit", forcing, relaxation; "forcing implicit", (fun _ x -> torch.zeros_like x), whole ] do
                    let s = Events.solve Sensitivity.Autograd [ event ] (OdeProblem.createSplit nonStiff stiff x0 [| 0.0; 2.0 |]) Solvers.kenCarp4 (StepControl.adaptive 1e-9 1e-11)
                    let t = s.Events.Head.Time.ToDouble()
                    printfn $"kencarp4, {name}: event at t* = {t} (error {abs (t - System.Math.PI / 3.0):G3}), {s.Statistics.AcceptedSteps} accepted"
                    Expect.floatClose { absolute = 1e-8; relative = 0.0 } t (System.Math.PI / 3.0) $"{name}: t* = π/3"
                    yield s.Statistics.AcceptedSteps ]
            Expect.isLessThan steps[1] 400 "an implicit solver's step counts"
            // Were the split dropped on the way through the event solve, both would solve the same sum in as many steps.
            Expect.isGreaterThan steps[0] (3 * steps[1]) "the explicit forcing costs more steps: the split was kept"
        }
        test "a part returning the wrong shape is named with the time, under kencarp4 and dopri5" {
            let late (shape: int64[]) (field: VectorField) : VectorField =
                fun t x -> if t > 0.3 then torch.zeros(shape, dtype = x.dtype) else field t x
            for solver in [ Solvers.kenCarp4; Solvers.dopri5 ] do
                use x0 = Tensors.f64 [| 1.0; 1.0 |]
                let nonStiffWrong = OdeProblem.createSplit (late [| 1L |] (Problems.linear rotation)) (Problems.linear stiffLinear) x0 [| 0.0; 1.0 |]
                let e = raises<OdeSolveException> (fun () -> Ode.solve nonStiffWrong solver (adaptive 1e-6 1e-9) |> ignore)
                Expect.equal e.Failure OdeFailure.VectorFieldMismatch $"{solver.Name}: named"
                Expect.stringContains e.Message "non-stiff part f_E" $"{solver.Name}: the part"
                Expect.stringContains e.Message $"t = {e.Time}" $"{solver.Name}: the time"
                Expect.isGreaterThan e.Time 0.3 $"{solver.Name}: where it happened"
                let stiffWrong = OdeProblem.createSplit (Problems.linear rotation) (late [| 2L; 1L |] (Problems.linear stiffLinear)) x0 [| 0.0; 1.0 |]
                let e = raises<OdeSolveException> (fun () -> Ode.solve stiffWrong solver (adaptive 1e-6 1e-9) |> ignore)
                Expect.stringContains e.Message "stiff part f_I" $"{solver.Name}: the stiff part"
                Expect.isGreaterThan e.Time 0.3 $"{solver.Name}: where it happened"
        }
    ]
