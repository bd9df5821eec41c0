/// Periodic reference signals for tracking in depth, as in the paper's Figure 1 (Massaroli et al. 2020; spec §7.2):
/// a Galerkin Neural ODE trained with an integral loss ∫ ‖z(s) − γ(s)‖² ds to follow γ(s) = (cos 2πs, sin 2πs).
/// A signal is a function of depth s returning one value per channel; `sampled` evaluates it on a depth grid.
module NeuralOde.Core.Datasets.Periodic

open System
open TorchSharp
open NeuralOde.Core.Internal

/// One channel: s ↦ [amplitude·sin(2π·frequency·s + phase)].
let sine (amplitude: float) (frequency: float) (phase: float) : float -> float[] =
    DatasetChecks.finite "amplitude" amplitude
    DatasetChecks.finite "frequency" frequency
    DatasetChecks.finite "phase" phase
    fun s -> [| amplitude * sin (2.0 * Math.PI * frequency * s + phase) |]

/// Two channels, the circle of radius `amplitude` traversed `frequency` times per unit depth:
/// s ↦ amplitude·(cos(2π·frequency·s + phase), sin(2π·frequency·s + phase)). `circle 1.0 1.0 0.0` is Figure 1's γ.
let circle (amplitude: float) (frequency: float) (phase: float) : float -> float[] =
    DatasetChecks.finite "amplitude" amplitude
    DatasetChecks.finite "frequency" frequency
    DatasetChecks.finite "phase" phase
    fun s ->
        let angle = 2.0 * Math.PI * frequency * s + phase
        [| amplitude * cos angle; amplitude * sin angle |]

/// `points` (≥ 2) depths evenly spaced on [0, depth] (depth > 0), both ends included.
let depthGrid (depth: float) (points: int) : float[] =
    Guard.positiveFinite "depth" depth
    DatasetChecks.countAtLeast 2 "points" points
    Array.init points (fun i -> if i = points - 1 then depth else depth * float i / float (points - 1))

/// The signal at depth `s` as a tensor [channels] of `dtype`.
let at (signal: float -> float[]) (s: float) (dtype: torch.ScalarType) : torch.Tensor =
    if isNull (box signal) then raise (ArgumentNullException("signal"))
    DatasetChecks.finite "s" s
    DatasetChecks.floating "dtype" dtype
    torch.tensor(signal s, dtype = dtype)

/// The signal on the grid `depths` (non-empty, finite) as a tensor [depths.Length; channels] of `dtype`, row i the
/// value at depths[i].
let sampled (signal: float -> float[]) (depths: float[]) (dtype: torch.ScalarType) : torch.Tensor =
    if isNull (box signal) then raise (ArgumentNullException("signal"))
    if isNull depths then raise (ArgumentNullException("depths"))
    DatasetChecks.countAtLeast 1 "depths.Length" depths.Length
    depths |> Array.iteri (fun i s ->
        if Double.IsNaN s || Double.IsInfinity s then
            raise (ArgumentOutOfRangeException("depths", s, $"depths[{i}] is {s}; every depth must be finite.")))
    DatasetChecks.floating "dtype" dtype
    let rows = depths |> Array.map signal
    let channels = rows[0].Length
    if channels < 1 || rows |> Array.exists (fun r -> r.Length <> channels) then
        raise (ArgumentException($"signal must return the same number (≥ 1) of channels at every depth; got {channels} at depths[0].", "signal"))
    torch.tensor(Array.concat rows, dtype = dtype).reshape(int64 depths.Length, int64 channels)
