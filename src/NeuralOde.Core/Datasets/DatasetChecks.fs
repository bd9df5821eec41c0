/// Argument checks shared by the dataset generators. Every failure is an ArgumentOutOfRangeException that names the
/// argument and the value given.
module internal NeuralOde.Core.Datasets.DatasetChecks

open System
open TorchSharp

/// The most points one call draws: ten million (more would take gigabytes at once: draw in batches).
let [<Literal>] MaxPoints = 10_000_000

let private bounded (argument: string) (value: int) =
    if value > MaxPoints then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} = {value} is more than {MaxPoints} points in one call; draw the data in batches."))

/// Fails unless `value` is an even number of at least 2 (half the points go to each class), and not huge.
let evenCount (argument: string) (value: int) =
    if value < 2 || value % 2 <> 0 then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be an even number of at least 2 (half the points in each class); got {value}."))
    bounded argument value

/// Fails unless `value` is at least `least`, and not huge.
let countAtLeast (least: int) (argument: string) (value: int) =
    if value < least then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be at least {least}; got {value}."))
    bounded argument value

/// Fails when a draw would hold more than 100 million numbers (points × dimension).
let elements (argument: string) (points: int64) (dim: int) =
    let total = points * int64 dim
    if total > 100_000_000L then
        raise (ArgumentOutOfRangeException(argument, total, $"{argument} = {points} × {dim} = {total} numbers in one call, more than 100 million; draw in batches or use fewer dimensions."))

/// Fails unless `value` is finite and non-negative (a noise level; 0 means none).
let noise (argument: string) (value: float) =
    if Double.IsNaN value || Double.IsInfinity value || value < 0.0 then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be a finite number of at least 0 (0 for no noise); got {value}."))

/// Fails unless `value` is finite.
let finite (argument: string) (value: float) = NeuralOde.Core.Internal.Guard.finite argument value

/// Fails unless the dtype is float32 or float64, the two the generators return.
let floating (argument: string) (dtype: torch.ScalarType) =
    if dtype <> torch.ScalarType.Float32 && dtype <> torch.ScalarType.Float64 then
        raise (ArgumentOutOfRangeException(argument, dtype, $"{argument} must be Float32 or Float64; got {dtype}."))

/// Fails if the generator is null.
let generator (argument: string) (value: torch.Generator) =
    if isNull value then raise (ArgumentNullException(argument, $"{argument} is null; pass a torch.Generator (e.g. new torch.Generator(seed)) so the data are reproducible."))
