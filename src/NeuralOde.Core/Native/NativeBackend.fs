/// Loads TorchSharp's native backend before TorchSharp first does, so that it works where TorchSharp's own loading
/// does not: F# Interactive (`#r "nuget: ..."`, or a script that references built DLLs), and Linux systems whose
/// libstdc++ predates GCC 13 (Debian 12, Ubuntu 22.04; see GlibcxxFix).
///
/// F# Interactive runs it by itself: the NeuralOde.Core package carries `content/NeuralOde.Core.fsx`, which F#
/// Interactive loads when a script references the package. Applications get the same fix at build time (the
/// package's buildTransitive targets edit the build output's copy); the C# facade also calls it when first used.
/// Call `ensureLoaded ()` yourself only before your first TorchSharp call in a setting that has neither.
///
/// It never writes into the NuGet package cache: a fixed copy of the shim is written to a private cache
/// (NEURALODE_NATIVE_CACHE, else $XDG_CACHE_HOME/neuralode, else ~/.cache/neuralode) and loaded from there.
module NeuralOde.Core.Native.NativeBackend

open System
open System.IO
open System.Runtime.InteropServices
open System.Security.Cryptography

/// What `ensureLoaded` found and did.
type NativeBackendStatus =
    /// Not Linux: TorchSharp's own loading applies unchanged.
    | NotApplicable
    /// The libstdc++ this process uses has GLIBCXX_3.4.32, or the shim TorchSharp will load needs no fix: nothing was
    /// done, TorchSharp's own loading applies.
    | NotNeeded
    /// TorchSharp's shim was already loaded in this process, from this path; nothing was done.
    | AlreadyLoaded of shim: string
    /// The backend was loaded from where it lies: this system's libstdc++ suffices, or the build already fixed the
    /// file.
    | Loaded of shim: string
    /// The shim needed the GLIBCXX_3.4.32 fix: a fixed copy of `original` was made at `copy` and loaded.
    | LoadedFixedCopy of original: string * copy: string
    /// TorchSharp's shim was not found in these folders; TorchSharp's own loading applies (and says what it lacks).
    | ShimNotFound of searched: string list

[<Literal>]
let private ShimFile = "libLibTorchSharp.so"

let private torchAssembly () = typeof<TorchSharp.torch>.Assembly

let private runtimeId () =
    match RuntimeInformation.ProcessArchitecture with
    | Architecture.Arm64 -> "linux-arm64"
    | _ -> "linux-x64"

/// Path of a loaded library whose file name is `file`, read from /proc/self/maps (None where there is no such file).
let loadedLibraryPath (file: string) =
    try
        File.ReadLines "/proc/self/maps"
        |> Seq.tryPick (fun line ->
            let at = line.IndexOf '/'
            if at >= 0 && Path.GetFileName(line.Substring at) = file then Some(line.Substring at) else None)
    with :? IOException | :? UnauthorizedAccessException -> None

/// Where a shim or libtorch may lie, in order: next to TorchSharp.dll and in its runtimes folder (a build output),
/// the application's folders and the host's native search folders (deps.json), and the package layout of the NuGet
/// cache (F# Interactive loads TorchSharp.dll from there).
let private searchFolders () =
    let rid = runtimeId ()
    let native dir = Path.Combine(dir, "runtimes", rid, "native")
    let torchDir = Path.GetDirectoryName(torchAssembly().Location)
    let hostDirs =
        match AppContext.GetData "NATIVE_DLL_SEARCH_DIRECTORIES" with
        | :? string as dirs -> dirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries) |> List.ofArray
        | _ -> []
    [ if not (String.IsNullOrEmpty torchDir) then
        yield torchDir
        yield native torchDir
      yield AppContext.BaseDirectory
      yield native AppContext.BaseDirectory
      yield! hostDirs
      if not (String.IsNullOrEmpty torchDir) then
        yield native (Path.Combine(torchDir, "..", "..")) ]
    |> List.map Path.GetFullPath
    |> List.distinct

/// The libtorch version TorchSharp was built against ("2.10.0"), read from its private constant; None if absent.
let private expectedLibtorch () =
    try
        match typeof<TorchSharp.torch>.GetField("libtorchPackageVersion", Reflection.BindingFlags.NonPublic ||| Reflection.BindingFlags.Static) with
        | null -> None
        | field ->
            match field.GetRawConstantValue() with
            | :? string as v ->
                // NuGet folders drop a fourth component of 0: "2.10.0.0" is the folder "2.10.0".
                let parts = v.Split('.')
                Some(if parts.Length = 4 && parts[3] = "0" then String.Join(".", parts[..2]) else v)
            | _ -> None
    with _ -> None

/// libtorch's native folder in a NuGet packages folder (F# Interactive loads TorchSharp from there):
/// libtorch-cpu-<rid>/<version>/runtimes/<rid>/native, the version TorchSharp expects first.
let private packageLibtorch (has: string -> bool) =
    let rid = runtimeId ()
    let torchDir = Path.GetDirectoryName(torchAssembly().Location)
    let roots =
        [ if not (String.IsNullOrEmpty torchDir) then yield Path.GetFullPath(Path.Combine(torchDir, "..", "..", "..", ".."))
          match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
          | null | "" -> ()
          | dir -> yield dir
          yield Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages") ]
        |> List.distinct
    let expected = expectedLibtorch ()
    roots |> List.tryPick (fun root ->
        let package = Path.Combine(root, $"libtorch-cpu-{rid}")
        if not (Directory.Exists package) then None
        else
            Directory.GetDirectories package
            |> Array.map Path.GetFileName
            |> Array.sortBy (fun v -> (if Some v = expected then 0 else 1), v)
            |> Array.tryPick (fun v ->
                let dir = Path.Combine(package, v, "runtimes", rid, "native")
                if has dir then Some dir else None))

/// Folder holding libtorch_cpu.so: beside the shim, in the search folders, or in the NuGet packages folder. Never a
/// bare-name load: the system's library path may hold another libtorch (Debian's python3-torch installs 1.13 in
/// /usr/lib), which must not be loaded into the process.
let private libtorchFolder (shimDir: string) (folders: string list) =
    let has dir = File.Exists(Path.Combine(dir, "libtorch_cpu.so"))
    match shimDir :: folders |> List.tryFind has with
    | Some dir -> Some dir
    | None -> packageLibtorch has

let private cacheRoot () =
    let env name = match Environment.GetEnvironmentVariable name with null | "" -> None | v -> Some v
    match env "NEURALODE_NATIVE_CACHE" with
    | Some dir -> dir
    | None ->
        let xdg = env "XDG_CACHE_HOME" |> Option.defaultWith (fun () ->
            Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache"))
        Path.Combine(xdg, "neuralode")

/// The fixed copy of `shim` in the private cache, written (temporary file, then rename) unless the copy there is
/// byte for byte `fixedImage`. The folder is named by the original's SHA-256 (another TorchSharp version gets its own
/// copy) and made readable by this user only; a copy that differs in any byte — stale, corrupt or planted — is
/// replaced, never loaded.
let private fixedCopy (shim: string) (original: byte[]) (fixedImage: byte[]) =
    let id = Convert.ToHexString(SHA256.HashData original).Substring(0, 16).ToLowerInvariant()
    let dir = Path.Combine(cacheRoot (), "native", id)
    let copy = Path.Combine(dir, ShimFile)
    let good () =
        try File.Exists copy && File.ReadAllBytes(copy).AsSpan().SequenceEqual(ReadOnlySpan fixedImage)
        with :? IOException | :? UnauthorizedAccessException -> false
    if not (good ()) then
        let temp = Path.Combine(dir, $"{ShimFile}.{Guid.NewGuid():N}.tmp")
        try
            try
                Directory.CreateDirectory(dir, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute) |> ignore
                File.WriteAllBytes(temp, fixedImage)
                File.Move(temp, copy, overwrite = true)
            with :? IOException | :? UnauthorizedAccessException as e ->
                // Another process may have written the same copy meanwhile.
                if not (good ()) then
                    raise (IOException($"NeuralOde could not write the fixed copy of TorchSharp's native shim to '{copy}' ({e.Message}). Set NEURALODE_NATIVE_CACHE to a writable folder.", e))
        finally
            try if File.Exists temp then File.Delete temp with _ -> ()
    copy

let private load (path: string) =
    try NativeLibrary.Load path
    with :? DllNotFoundException as e ->
        raise (DllNotFoundException($"NeuralOde could not load '{path}': {e.Message}", e))

let private gate = obj ()
let mutable private outcome: NativeBackendStatus option = None

let private loadBackend () =
    match loadedLibraryPath ShimFile with
    | Some shim -> AlreadyLoaded shim
    | None ->
    if (loadedLibraryPath "libtorch_cpu.so").IsSome then
        // libtorch is in the process but the shim is not: TorchSharp tried to load its backend and failed, which it
        // does not retry (its type initializer has failed for good).
        raise (InvalidOperationException(
            "TorchSharp already tried to load its native backend in this process and failed (libtorch is loaded, its shim libLibTorchSharp.so is not); nothing can be fixed now. Call NeuralOde.Core.Native.NativeBackend.ensureLoaded () (C#: NativeBackend.EnsureLoaded()) before the first TorchSharp call."))
    // The libstdc++ this process already uses (the .NET runtime links it), else the usual places.
    let libstdcxx = loadedLibraryPath "libstdc++.so.6"
    match GlibcxxFix.libstdcxxHasRequiredVersion libstdcxx with
    | Some true | None -> NotNeeded
    | Some false ->
    let folders = searchFolders ()
    match folders |> List.tryFind (fun dir -> File.Exists(Path.Combine(dir, ShimFile))) with
    | None -> ShimNotFound folders
    | Some shimDir ->
    let shim = Path.Combine(shimDir, ShimFile)
    let original = try File.ReadAllBytes shim with :? UnauthorizedAccessException as e -> raise (IOException($"NeuralOde cannot read TorchSharp's shim '{shim}': {e.Message}", e))
    let image = Array.copy original
    match GlibcxxFix.patchImage image shim with
    | GlibcxxFix.NotNeeded -> NotNeeded
    | outcome ->
    let libtorch =
        match libtorchFolder shimDir folders with
        | Some dir -> dir
        | None ->
            let searched = String.Join(", ", folders)
            let package = $"libtorch-cpu-{runtimeId ()}"
            raise (DllNotFoundException(
                $"NeuralOde found TorchSharp's shim at '{shim}' but not libtorch (libtorch_cpu.so) beside it, in {searched}, or through the host. Reference the native backend: the package {package} 2.10.0 (in a script: #r \"nuget: {package}, 2.10.0\")."))
    // The shim's own dependencies, loaded by path so that the loader finds them by name (soname) whatever folder
    // the shim is loaded from.
    let torchCpu =
        [ "libc10.so"; "libtorch_cpu.so"; "libtorch.so" ]
        |> List.map (fun file -> file, Path.Combine(libtorch, file))
        |> List.filter (snd >> File.Exists)
        |> List.map (fun (file, path) -> file, load path)
        |> List.tryPick (fun (file, handle) -> if file = "libtorch_cpu.so" then Some handle else None)
    // Already fixed (a build output): loaded where it lies, so that a script referencing built DLLs finds it.
    let status, path =
        match outcome with
        | GlibcxxFix.Patched ->
            let copy = fixedCopy shim original image
            LoadedFixedCopy(shim, copy), copy
        | _ -> Loaded shim, shim
    let shimHandle = load path
    let resolver =
        DllImportResolver(fun name _ _ ->
            match name with
            | "LibTorchSharp" -> shimHandle
            | "torch_cpu" -> defaultArg torchCpu IntPtr.Zero
            | _ -> IntPtr.Zero)
    try NativeLibrary.SetDllImportResolver(torchAssembly (), resolver)
    with :? InvalidOperationException ->
        raise (InvalidOperationException(
            $"NeuralOde loaded TorchSharp's native backend from '{path}' but cannot direct TorchSharp to it: another component already set TorchSharp's DllImportResolver. Call NativeBackend.ensureLoaded () before that component."))
    status

/// Makes TorchSharp's native backend loadable in this process and loads it, once; later calls return the first
/// call's status. Does nothing when the libstdc++ this process uses has GLIBCXX_3.4.32 (NotNeeded) or the shim is
/// already loaded (AlreadyLoaded). Otherwise it loads the build output's already-fixed shim, or a fixed copy of the
/// package's, and points TorchSharp at it. Raises InvalidOperationException when TorchSharp already failed to load
/// its backend in this process (too late), and DllNotFoundException, IOException or InvalidDataException, each
/// saying what was missing and what to do, when the fix is needed and cannot be made.
let ensureLoaded () : NativeBackendStatus =
    lock gate (fun () ->
        match outcome with
        | Some status -> status
        | None ->
            let status = if OperatingSystem.IsLinux() then loadBackend () else NotApplicable
            outcome <- Some status
            status)
