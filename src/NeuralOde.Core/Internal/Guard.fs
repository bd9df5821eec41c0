/// Argument checks shared by the public entry points. Every failure names the argument, the value given and,
/// where it helps, what to try.
module internal NeuralOde.Core.Internal.Guard

open System

/// Fails unless `value` is finite and strictly positive.
let positiveFinite (argument: string) (value: float) =
    if Double.IsNaN value || Double.IsInfinity value || value <= 0.0 then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be a finite number greater than zero; got {value}."))

/// Fails unless `value` is finite.
let finite (argument: string) (value: float) =
    if Double.IsNaN value || Double.IsInfinity value then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be a finite number; got {value}."))

/// Fails unless a layer size (features, channels, kernel size) is at least 1 and at most 2^24: beyond that the
/// weights would not fit in memory anyway, and the size arithmetic could overflow.
let layerSize (argument: string) (value: int64) =
    if value < 1L || value > (1L <<< 24) then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be between 1 and {1L <<< 24}; got {value}."))

/// Fails unless every element of `values` is finite, naming the first that is not as `name i` (a[2][1], times[3])
/// and saying `what` must hold.
let finiteEntries (argument: string) (name: int -> string) (what: string) (values: float[]) =
    values |> Array.iteri (fun i v ->
        if Double.IsNaN v || Double.IsInfinity v then raise (ArgumentException($"{name i} is {v}; {what}.", argument)))

/// Fails unless `value` is at least 1.
let positiveCount (argument: string) (value: int) =
    if value < 1 then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be at least 1; got {value}."))

/// Fails unless a number of fixed steps is between 1 and `most`.
let stepCount (argument: string) (most: int) (value: int) =
    if value < 1 || value > most then
        raise (ArgumentOutOfRangeException(argument, value, $"{argument} must be between 1 and {most}; got {value}."))

/// Fails unless t0 and t1 are finite and distinct: the span of a fixed-step solve (named "t0" and "t1").
let span (t0: float) (t1: float) =
    finite "t0" t0
    finite "t1" t1
    if t0 = t1 then raise (ArgumentException($"The span must not be empty; got t0 = t1 = {t0}.", "t1"))

/// Fails unless the grid has two or more finite points, strictly increasing or strictly decreasing.
/// Returns the direction of integration: +1.0 forward, -1.0 backward.
let timeGrid (argument: string) (times: float[]) =
    if isNull times then raise (ArgumentNullException(argument))
    if times.Length < 2 then
        raise (ArgumentException($"{argument} must hold at least a start and an end time; got {times.Length} point(s).", argument))
    times |> finiteEntries argument (fun i -> $"{argument}[{i}]") "every time must be finite"
    let t0, t1 = times[0], times[1]
    if t0 = t1 then
        raise (ArgumentException($"{argument} spans an empty interval: {argument}[0] = {argument}[1] = {t0}. Give distinct start and end times.", argument))
    let direction = if t1 > t0 then 1.0 else -1.0
    let last = times[times.Length - 1]
    if Double.IsInfinity(last - t0) then
        raise (ArgumentException($"{argument} spans {t0} to {last}, a length that overflows a double; shift or rescale the times.", argument))
    for i in 1 .. times.Length - 1 do
        if (times[i] - times[i - 1]) * direction <= 0.0 then
            let want = if direction > 0.0 then "strictly increasing" else "strictly decreasing"
            raise (ArgumentException(
                $"{argument} must be {want} (its first two points set the direction); {argument}[{i - 1}] = {times[i - 1]} and {argument}[{i}] = {times[i]}.",
                argument))
    direction
