/// The dataset generators: shapes and dtypes, reproducibility from a seed, the geometry each one promises (radii of
/// the spheres, the moons on their half circles, the spirals on their curves, the mixture's component means and its
/// normalised log-density, the checkerboard's black squares, the reflections' targets, the periodic signals), and
/// argument errors that name the argument.
module NeuralOde.Tests.Datasets.DatasetTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core.Datasets
open NeuralOde.Tests.Support

let private rows (x: torch.Tensor) : float[][] =
    let d = int x.shape[1]
    Tensors.toArray x |> Array.chunkBySize d

let private labelsOf (y: torch.Tensor) : int64[] =
    use c = y.contiguous()
    c.data<int64>().ToArray()

let private norm (p: float[]) = p |> Array.sumBy (fun v -> v * v) |> sqrt

let private withSeed (seed: uint64) (f: torch.Generator -> 'a) =
    use g = new torch.Generator(seed)
    f g

/// Every random generator as seed ↦ its tensors (float64), for the determinism tests.
let private generators : (string * (torch.Generator -> torch.Tensor list)) list =
    let two (a: torch.Tensor, b: torch.Tensor) = [ a; b ]
    let three (a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) = [ a; b; c ]
    let f64 = torch.float64
    [ "annuli", fun g -> Annuli.sample 64 0.1 f64 g |> two
      "spheres", fun g -> Spheres.sample 3 20 40 f64 g |> three
      "moons", fun g -> Moons.sample 64 0.1 f64 g |> two
      "spirals", fun g -> Spirals.sample 64 0.1 f64 g |> two
      "gaussian mixture", fun g -> GaussianMixture.sample (GaussianMixture.onCircle 8 4.0 0.5) 64 f64 g |> two
      "checkerboard", fun g -> [ Checkerboard.sample 64 f64 g ]
      "reflection", fun g -> Reflection.sample 3 64 f64 g |> two
      "g_1d", fun g -> Reflection.g1d 64 0.1 f64 g |> two ]

let private sameData (a: torch.Tensor list) (b: torch.Tensor list) =
    List.forall2 (fun (x: torch.Tensor) (y: torch.Tensor) -> x.dtype = y.dtype && x.shape = y.shape && Tensors.maxAbsDiff x y = 0.0) a b

let private shapes =
    testList "shapes and dtypes" [
        for dtype in [ torch.float32; torch.float64 ] do
            test $"every generator returns {dtype} inputs and int64 labels of the documented shapes" {
                use g = new torch.Generator(1UL)
                let check (name: string) (t: torch.Tensor) (shape: int64[]) (ty: torch.ScalarType) =
                    Expect.equal t.shape shape $"{name}: shape"
                    Expect.equal t.dtype ty $"{name}: dtype"
                let x, y, z = Spheres.sample 5 30 50 dtype g
                check "spheres inputs" x [| 80L; 5L |] dtype
                check "spheres labels" y [| 80L |] torch.int64
                check "spheres targets" z [| 80L; 1L |] dtype
                let x, y = Moons.sample 101 0.1 dtype g
                check "moons inputs" x [| 101L; 2L |] dtype
                check "moons labels" y [| 101L |] torch.int64
                let x, y = Spirals.sample 100 0.1 dtype g
                check "spirals inputs" x [| 100L; 2L |] dtype
                check "spirals labels" y [| 100L |] torch.int64
                let mixture = GaussianMixture.onCircle 6 2.0 0.3
                let x, y = GaussianMixture.sample mixture 77 dtype g
                check "mixture samples" x [| 77L; 2L |] dtype
                check "mixture labels" y [| 77L |] torch.int64
                check "mixture log-density" (GaussianMixture.logDensity mixture x) [| 77L |] dtype
                check "checkerboard" (Checkerboard.sample 33 dtype g) [| 33L; 2L |] dtype
                let x, y = Reflection.sample 4 21 dtype g
                check "reflection inputs" x [| 21L; 4L |] dtype
                check "reflection targets" y [| 21L; 4L |] dtype
                let x, y = Reflection.g1d 13 0.0 dtype g
                check "g_1d inputs" x [| 13L; 1L |] dtype
                check "g_1d targets" y [| 13L; 1L |] dtype
                let depths = Periodic.depthGrid 1.0 11
                check "periodic circle" (Periodic.sampled (Periodic.circle 1.0 1.0 0.0) depths dtype) [| 11L; 2L |] dtype
                check "periodic sine" (Periodic.sampled (Periodic.sine 1.0 2.0 0.0) depths dtype) [| 11L; 1L |] dtype
                check "periodic at s" (Periodic.at (Periodic.circle 1.0 1.0 0.0) 0.3 dtype) [| 2L |] dtype
            }
    ]

let private determinism =
    testList "determinism" [
        for name, draw in generators do
            test $"{name}: the same seed gives the same data, another seed other data" {
                let a = withSeed 7UL draw
                let b = withSeed 7UL draw
                let c = withSeed 8UL draw
                Expect.isTrue (sameData a b) "seed 7 twice gives identical tensors"
                Expect.isFalse (sameData a c) "seeds 7 and 8 give different tensors"
            }
    ]

let private spheres =
    testList "spheres" [
        for dim in [ 1; 2; 3; 10 ] do
            test $"d = {dim}: inner radii in [0, 0.5], outer in [1, 1.5], targets ∓1 by class, radii distributed as (rmax − rmin)·U^{{1/d}} + rmin" {
                use g = new torch.Generator(11UL)
                let x, y, z = Spheres.sample dim 400 800 torch.float64 g
                let radii = rows x |> Array.map norm
                let labels = labelsOf y
                let targets = Tensors.toArray z
                let inner = [| for i in 0 .. radii.Length - 1 do if labels[i] = 0L then radii[i] |]
                let outer = [| for i in 0 .. radii.Length - 1 do if labels[i] = 1L then radii[i] |]
                Expect.equal (inner.Length, outer.Length) (400, 800) "400 inner and 800 outer points"
                Expect.isLessThanOrEqual (Array.max inner) (0.5 + 1e-12) "inner radii ≤ r1"
                Expect.isGreaterThanOrEqual (Array.min outer) (1.0 - 1e-12) "outer radii ≥ r2"
                Expect.isLessThanOrEqual (Array.max outer) (1.5 + 1e-12) "outer radii ≤ r3"
                // r = (rmax − rmin)·U^{1/d} + rmin, so ((r − rmin)/(rmax − rmin))^d is U[0, 1): mean ½, sd √(1/12)/√n.
                let uniformMean (radii: float[]) rmin rmax =
                    radii |> Array.averageBy (fun r -> ((r - rmin) / (rmax - rmin)) ** float dim)
                for name, radii, rmin, rmax in [ "inner", inner, 0.0, 0.5; "outer", outer, 1.0, 1.5 ] do
                    let m = uniformMean radii rmin rmax
                    Expect.isLessThan (abs (m - 0.5)) (5.0 * sqrt (1.0 / 12.0 / float radii.Length)) $"{name}: mean of the recovered U is {m}"
                for i in 0 .. labels.Length - 1 do
                    Expect.equal targets[i] (if labels[i] = 0L then -1.0 else 1.0) $"target of point {i}"
            }
        test "in 2-D the directions are uniform: the mean of the unit directions is near 0" {
            use g = new torch.Generator(12UL)
            let x, _, _ = Spheres.sample 2 1 4000 torch.float64 g
            let units = rows x |> Array.map (fun p -> let r = norm p in [| p[0] / r; p[1] / r |])
            let mean c = units |> Array.averageBy (fun u -> u[c])
            // Each coordinate of a uniform unit vector in 2-D has variance ½: 5 standard errors of the mean.
            let bound = 5.0 * sqrt (0.5 / 4001.0)
            Expect.isLessThan (abs (mean 0)) bound "mean cos"
            Expect.isLessThan (abs (mean 1)) bound "mean sin"
        }
        test "custom radii are honoured" {
            use g = new torch.Generator(13UL)
            let x, y, _ = Spheres.sampleWithRadii 1.0 2.0 3.0 3 100 100 torch.float64 g
            let radii = rows x |> Array.map norm
            let labels = labelsOf y
            for i in 0 .. radii.Length - 1 do
                if labels[i] = 0L then Expect.isLessThanOrEqual radii[i] (1.0 + 1e-12) "inner"
                else Expect.isTrue (radii[i] >= 2.0 - 1e-12 && radii[i] <= 3.0 + 1e-12) $"outer radius {radii[i]} in [2, 3]"
        }
    ]

/// Smallest distance between a point of class 0 and one of class 1.
let private crossClassDistance (points: float[][]) (labels: int64[]) =
    let a = [| for i in 0 .. points.Length - 1 do if labels[i] = 0L then points[i] |]
    let b = [| for i in 0 .. points.Length - 1 do if labels[i] = 1L then points[i] |]
    seq { for p in a do for q in b -> norm [| p[0] - q[0]; p[1] - q[1] |] } |> Seq.min

let private moons =
    testList "moons" [
        test "without noise each class lies on its half circle and the classes are 0.5 apart" {
            use g = new torch.Generator(21UL)
            let x, y = Moons.sample 201 0.0 torch.float64 g
            let points = rows x
            let labels = labelsOf y
            Expect.equal (labels |> Array.filter ((=) 0L) |> Array.length) 100 "n / 2 rounded down on the upper moon"
            for i in 0 .. points.Length - 1 do
                let p = points[i]
                if labels[i] = 0L then
                    Expect.floatClose Accuracy.high (norm p) 1.0 $"upper moon point {i} on the unit circle"
                    Expect.isGreaterThanOrEqual p[1] -1e-12 "upper moon above y = 0"
                else
                    Expect.floatClose Accuracy.high (norm [| p[0] - 1.0; p[1] - 0.5 |]) 1.0 $"lower moon point {i} on the circle about (1, 0.5)"
                    Expect.isLessThanOrEqual p[1] (0.5 + 1e-12) "lower moon below y = 0.5"
            Expect.isGreaterThan (crossClassDistance points labels) 0.49 "the two moons are 0.5 apart"
        }
        test "with noise 0.3 the classes come closer than 0.49 (the separation test can fail)" {
            use g = new torch.Generator(22UL)
            let x, y = Moons.sample 200 0.3 torch.float64 g
            Expect.isLessThan (crossClassDistance (rows x) (labelsOf y)) 0.49 "noisy moons overlap"
        }
    ]

let private spirals =
    testList "spirals" [
        test "without noise x = ±(−θ cos θ, θ sin θ) with θ = ‖x‖ ≤ 13π/3, the sign set by the class" {
            use g = new torch.Generator(31UL)
            let x, y = Spirals.sample 400 0.0 torch.float64 g
            let points = rows x
            let labels = labelsOf y
            for i in 0 .. points.Length - 1 do
                let theta = norm points[i]
                let sign = if labels[i] = 0L then 1.0 else -1.0
                Expect.isLessThanOrEqual theta (Spirals.MaxAngle + 1e-9) "angle at most 13π/3"
                let p = points[i]
                Expect.floatClose Accuracy.high p[0] (-sign * theta * cos theta) $"x of point {i}"
                Expect.floatClose Accuracy.high p[1] (sign * theta * sin theta) $"y of point {i}"
        }
    ]

let private gaussianMixture =
    testList "gaussian mixture" [
        for mixture in [ GaussianMixture.onCircle 4 3.0 0.5; GaussianMixture.withMeans (array2D [ [ 0.0; 1.0; -2.0 ]; [ 3.0; 0.0; 1.0 ] ]) 0.7 ] do
            test $"{mixture}: each component's sample mean is within 5 standard errors of its mean, its share within 5 sd of 1/k" {
                use g = new torch.Generator(41UL)
                let n = 8000
                let x, y = GaussianMixture.sample mixture n torch.float64 g
                let points = rows x
                let labels = labelsOf y
                let means = mixture.Means
                let k = mixture.Components
                for j in 0 .. k - 1 do
                    let members = [| for i in 0 .. n - 1 do if labels[i] = int64 j then points[i] |]
                    let p = 1.0 / float k
                    let countBound = 5.0 * sqrt (float n * p * (1.0 - p))
                    Expect.isLessThan (abs (float members.Length - float n * p)) countBound $"component {j} drawn {members.Length} times of {n}"
                    for c in 0 .. mixture.Dimension - 1 do
                        let mean = members |> Array.averageBy (fun q -> q[c])
                        let bound = 5.0 * mixture.Sigma / sqrt (float members.Length)
                        Expect.isLessThan (abs (mean - means[j, c])) bound $"component {j}, coordinate {c}: sample mean {mean} vs {means[j, c]}"
            }
        test "onCircle puts the means on the circle of radius r, evenly spaced from angle 0" {
            let m = (GaussianMixture.onCircle 8 4.0 0.5).Means
            for j in 0 .. 7 do
                let angle = 2.0 * Math.PI * float j / 8.0
                Expect.floatClose Accuracy.veryHigh m[j, 0] (4.0 * cos angle) $"mean {j} x"
                Expect.floatClose Accuracy.veryHigh m[j, 1] (4.0 * sin angle) $"mean {j} y"
        }
        test "the log-density integrates to 1 on a grid (8 Gaussians, r = 2, σ = 0.5)" {
            let mixture = GaussianMixture.onCircle 8 2.0 0.5
            let h = 0.05
            let ticks = Array.init 201 (fun i -> -5.0 + h * float i)
            let grid = [| for a in ticks do for b in ticks -> [| a; b |] |]
            use x = Tensors.f64m grid
            use logp = GaussianMixture.logDensity mixture x
            let total = Tensors.toArray logp |> Array.sumBy (fun l -> exp l * h * h)
            Expect.floatClose { absolute = 1e-4; relative = 0.0 } total 1.0 $"∫ p ≈ {total}"
        }
        test "the log-density of one Gaussian is the normal log-density, and a far-away second mean halves it" {
            let one = GaussianMixture.withMeans (array2D [ [ 1.0; -1.0 ] ]) 0.5
            use x = Tensors.f64m [| [| 1.3; -0.6 |] |]
            let expected = -(0.09 + 0.16) / (2.0 * 0.25) - log (2.0 * Math.PI * 0.25)
            let single = Tensors.toArray (GaussianMixture.logDensity one x)
            Expect.floatClose Accuracy.veryHigh single[0] expected "log N(x; μ, σ²I)"
            let two = GaussianMixture.withMeans (array2D [ [ 1.0; -1.0 ]; [ 100.0; 100.0 ] ]) 0.5
            let pair = Tensors.toArray (GaussianMixture.logDensity two x)
            Expect.floatClose Accuracy.veryHigh pair[0] (expected - log 2.0) "half the weight"
        }
        test "the log-density keeps x's dtype and is differentiable in x" {
            let mixture = GaussianMixture.onCircle 3 1.0 0.4
            use x = torch.tensor([| 0.2f; 0.1f; -0.5f; 0.3f |], requires_grad = true).reshape(2L, 2L)
            use logp = GaussianMixture.logDensity mixture x
            Expect.equal logp.dtype torch.float32 "float32 in, float32 out"
            use total = logp.sum()
            let grads = torch.autograd.grad([| total |], [| x |])
            Expect.equal grads[0].shape [| 2L; 2L |] "∇_x log p"
            Expect.isTrue (Tensors.toArray grads[0] |> Array.forall Double.IsFinite) "finite gradient"
        }
    ]

let private checkerboard =
    testList "checkerboard" [
        test "samples lie in [−4, 4)² on the black squares (⌊x₁/2⌋ + ⌊x₂/2⌋ even), all eight of them about equally" {
            use g = new torch.Generator(51UL)
            let n = 8000
            let points = rows (Checkerboard.sample n torch.float64 g)
            let squares = Collections.Generic.Dictionary<int * int, int>()
            for p in points do
                Expect.isTrue (p[0] >= -4.0 && p[0] < 4.0 && p[1] >= -4.0 && p[1] < 4.0) $"{p[0]}, {p[1]} in [−4, 4)²"
                let cell = int (floor (p[0] / 2.0)), int (floor (p[1] / 2.0))
                Expect.equal ((fst cell + snd cell) % 2 |> abs) 0 $"({p[0]}, {p[1]}) is on a black square"
                squares[cell] <- (match squares.TryGetValue cell with | true, c -> c | _ -> 0) + 1
            Expect.equal squares.Count 8 "all eight black squares are used"
            let bound = 5.0 * sqrt (float n * (1.0 / 8.0) * (7.0 / 8.0))
            for KeyValue(cell, count) in squares do
                Expect.isLessThan (abs (float count - float n / 8.0)) bound $"square {cell} holds {count}"
        }
    ]

let private reflection =
    testList "reflection" [
        test "φ(x) = −x: inputs uniform in [−1, 1]^d, targets exactly −inputs" {
            use g = new torch.Generator(61UL)
            let x, y = Reflection.sample 3 500 torch.float64 g
            let inputs = Tensors.toArray x
            Expect.isTrue (inputs |> Array.forall (fun v -> v >= -1.0 && v <= 1.0)) "inputs in [−1, 1]"
            Expect.isLessThan (abs (Array.average inputs)) 0.1 "inputs centred"
            use minusX = x.neg()
            Expect.equal (Tensors.maxAbsDiff y minusX) 0.0 "targets = −inputs"
        }
        test "g_1d without noise: inputs are ±1, about half each, targets −inputs" {
            use g = new torch.Generator(62UL)
            let x, y = Reflection.g1d 1000 0.0 torch.float64 g
            let inputs = Tensors.toArray x
            Expect.isTrue (inputs |> Array.forall (fun v -> v = 1.0 || v = -1.0)) "inputs are ±1"
            let positives = inputs |> Array.filter (fun v -> v > 0.0) |> Array.length
            Expect.isLessThan (abs (float positives - 500.0)) (5.0 * sqrt 250.0) $"{positives} of 1000 are +1"
            use minusX = x.neg()
            Expect.equal (Tensors.maxAbsDiff y minusX) 0.0 "targets = −inputs"
        }
        test "g_1d with noise: the noise is on the inputs only, targets stay ∓1" {
            use g = new torch.Generator(63UL)
            let x, y = Reflection.g1d 1000 0.1 torch.float64 g
            let inputs, targets = Tensors.toArray x, Tensors.toArray y
            Expect.isTrue (targets |> Array.forall (fun v -> v = 1.0 || v = -1.0)) "targets are ±1"
            Expect.isFalse (inputs |> Array.forall (fun v -> v = 1.0 || v = -1.0)) "inputs are perturbed"
            let deviations = Array.map2 (fun i t -> i + t) inputs targets
            Expect.isLessThan (abs (sqrt (Array.averageBy (fun d -> d * d) deviations) - 0.1)) 0.01 "input − clean input has std 0.1"
        }
    ]

let private periodic =
    testList "periodic" [
        test "circle 1 1 0 is Figure 1's γ(s) = (cos 2πs, sin 2πs), sampled row by row on the grid" {
            let gamma = Periodic.circle 1.0 1.0 0.0
            let depths = Periodic.depthGrid 1.0 21
            Expect.equal (depths[0], depths[20]) (0.0, 1.0) "the grid spans [0, 1]"
            let values = rows (Periodic.sampled gamma depths torch.float64)
            for i in 0 .. depths.Length - 1 do
                let s = depths[i]
                let v = values[i]
                Expect.floatClose Accuracy.veryHigh v[0] (cos (2.0 * Math.PI * s)) $"cos at {s}"
                Expect.floatClose Accuracy.veryHigh v[1] (sin (2.0 * Math.PI * s)) $"sin at {s}"
            let at = Tensors.toArray (Periodic.at gamma 0.25 torch.float64)
            Expect.floatClose Accuracy.veryHigh at[1] 1.0 "γ(¼) = (0, 1)"
        }
        test "sine has period 1/f, amplitude and phase as given" {
            let signal = Periodic.sine 2.0 3.0 0.5
            for s in [ 0.0; 0.1; 0.37; 0.9 ] do
                let here = (signal s).[0]
                let later = (signal (s + 1.0 / 3.0)).[0]
                Expect.floatClose Accuracy.veryHigh here later $"period at {s}"
                Expect.floatClose Accuracy.veryHigh here (2.0 * sin (6.0 * Math.PI * s + 0.5)) $"value at {s}"
        }
    ]

let private argumentErrors =
    let cases : (string * string * (unit -> unit)) list =
        let f32 = torch.float32
        let g () = new torch.Generator(1UL)
        [ "spheres dim 0", "dim", fun () -> Spheres.sample 0 10 10 f32 (g ()) |> ignore
          "spheres inner 0", "inner", fun () -> Spheres.sample 2 0 10 f32 (g ()) |> ignore
          "spheres r2 ≤ r1", "r2", fun () -> Spheres.sampleWithRadii 1.0 0.5 2.0 2 10 10 f32 (g ()) |> ignore
          "spheres r3 ≤ r2", "r3", fun () -> Spheres.sampleWithRadii 0.5 1.0 1.0 2 10 10 f32 (g ()) |> ignore
          "moons n 1", "n", fun () -> Moons.sample 1 0.1 f32 (g ()) |> ignore
          "moons noise −0.1", "noise", fun () -> Moons.sample 10 -0.1 f32 (g ()) |> ignore
          "moons noise NaN", "noise", fun () -> Moons.sample 10 nan f32 (g ()) |> ignore
          "moons dtype int64", "dtype", fun () -> Moons.sample 10 0.1 torch.int64 (g ()) |> ignore
          "spirals n odd", "n", fun () -> Spirals.sample 7 0.1 f32 (g ()) |> ignore
          "spirals noise ∞", "noise", fun () -> Spirals.sample 8 infinity f32 (g ()) |> ignore
          "mixture components 0", "components", fun () -> GaussianMixture.onCircle 0 1.0 0.5 |> ignore
          "mixture sigma 0", "sigma", fun () -> GaussianMixture.onCircle 3 1.0 0.0 |> ignore
          "mixture mean NaN", "means", fun () -> GaussianMixture.withMeans (array2D [ [ nan; 0.0 ] ]) 1.0 |> ignore
          "mixture n 0", "n", fun () -> GaussianMixture.sample (GaussianMixture.onCircle 3 1.0 0.5) 0 f32 (g ()) |> ignore
          "checkerboard n 0", "n", fun () -> Checkerboard.sample 0 f32 (g ()) |> ignore
          "reflection dim 0", "dim", fun () -> Reflection.sample 0 10 f32 (g ()) |> ignore
          "g_1d noise −1", "noise", fun () -> Reflection.g1d 10 -1.0 f32 (g ()) |> ignore
          "periodic points 1", "points", fun () -> Periodic.depthGrid 1.0 1 |> ignore
          "periodic depth 0", "depth", fun () -> Periodic.depthGrid 0.0 5 |> ignore
          "periodic frequency NaN", "frequency", fun () -> Periodic.sine 1.0 nan 0.0 |> ignore
          "annuli n odd", "n", fun () -> Annuli.sample 5 0.1 f32 (g ()) |> ignore ]
    testList "argument errors" [
        for name, argument, action in cases do
            test $"{name}: ArgumentOutOfRangeException naming {argument}" {
                let e = Raises.raises<ArgumentOutOfRangeException> action
                Expect.equal e.ParamName argument "the argument is named"
                Expect.stringContains e.Message argument "the message names it too"
            }
        test "logDensity of a wrongly shaped x names x and the expected shape" {
            let mixture = GaussianMixture.onCircle 3 1.0 0.5
            use x = torch.zeros([| 4L; 3L |])
            let e = Raises.raises<ArgumentException> (fun () -> GaussianMixture.logDensity mixture x |> ignore)
            Expect.equal e.ParamName "x" "names x"
            Expect.stringContains e.Message "[N, 2]" "says the expected shape"
        }
    ]

[<Tests>]
let tests =
    testList "Datasets" [ shapes; determinism; spheres; moons; spirals; gaussianMixture; checkerboard; reflection; periodic; argumentErrors ]
