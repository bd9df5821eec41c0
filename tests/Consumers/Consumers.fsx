// The consumer paths, as a new user meets them: the two packages are packed with a fresh version, then the C#
// quickstart (examples/Quickstart.CSharp) as a new console app, the F# quickstart (examples/Quickstart.FSharp) as a
// new app that references only NeuralOde.Core (built twice: with the package's build-time native fix, and without
// it, loading the backend by NativeBackend.ensureLoaded), and the F# script quickstart (examples/quickstart.fsx) are
// restored from those packages, built outside this repository's Directory.Build files, and run. Each solves an ODE
// and checks an adjoint gradient against its closed form. Loaded by build.fsx (targets test and pack).
module Consumers

#load "../Scripts/Exec.fsx"

open System
open System.Diagnostics
open System.IO

/// One consumer's result.
type Outcome = { Name: string; Passed: bool; Seconds: float; Output: string }

/// Runs a program, echoing its output; a hung restore or program is killed after 10 minutes and fails its consumer.
let private exec = Exec.run true (TimeSpan.FromMinutes 10.0)

/// Packs NeuralOde.Core and NeuralOde into `packages` with a version no earlier run used (so the NuGet cache never
/// serves a stale copy). Returns the version.
let pack (root: string) (configuration: string) (packages: string) =
    let version = "0.1.0-local." + DateTime.UtcNow.ToString("yyyyMMddHHmmss")
    Directory.CreateDirectory packages |> ignore
    for project in [ "src/NeuralOde.Core/NeuralOde.Core.fsproj"; "src/NeuralOde/NeuralOde.csproj" ] do
        let code, _ = exec root [] "dotnet" [ "pack"; project; "-c"; configuration; "-o"; packages; $"-p:Version={version}"; "-nologo"; "-v"; "quiet" ]
        if code <> 0 then failwithf "dotnet pack %s failed (exit code %d)" project code
    version

/// True when this system's libstdc++ lacks GLIBCXX_3.4.32 (then the run-time loader must make a fixed copy).
let private needsGlibcxxFix () =
    [ "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"; "/lib/x86_64-linux-gnu/libstdc++.so.6"; "/usr/lib64/libstdc++.so.6" ]
    |> List.tryFind File.Exists
    |> Option.map (fun p -> not ((File.ReadAllText(p, Text.Encoding.Latin1)).Contains "GLIBCXX_3.4.32\000"))
    |> Option.defaultValue false

/// A folder outside the repository's Directory.Build.* and central package management, as a user's project.
let private userFolder (dir: string) (packages: string) =
    if Directory.Exists dir then Directory.Delete(dir, true)
    Directory.CreateDirectory dir |> ignore
    File.WriteAllText(Path.Combine(dir, "Directory.Build.props"), "<Project />")
    File.WriteAllText(Path.Combine(dir, "Directory.Build.targets"), "<Project />")
    File.WriteAllText(Path.Combine(dir, "Directory.Packages.props"), "<Project><PropertyGroup><ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally></PropertyGroup></Project>")
    File.WriteAllText(Path.Combine(dir, "nuget.config"), $"""<?xml version="1.0" encoding="utf-8"?>
<configuration><packageSources><add key="neuralode-local" value="{packages}" /></packageSources></configuration>""")

/// A project file as `dotnet new console` would write it (C#: implicit usings and nullable on; F#: Program.fs).
let private project (fsharp: bool) (package: string) (version: string) =
    let language =
        if fsharp then """<ItemGroup><Compile Include="Program.fs" /></ItemGroup>"""
        else "<PropertyGroup><ImplicitUsings>enable</ImplicitUsings><Nullable>enable</Nullable></PropertyGroup>"
    $"""<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><NoWarn>NU1603</NoWarn></PropertyGroup>
  {language}
  <ItemGroup>
    <PackageReference Include="{package}" Version="{version}" />
    <PackageReference Include="libtorch-cpu-linux-x64" Version="2.10.0" />
  </ItemGroup>
</Project>"""

/// Runs every consumer against packages of `version` in `packages`; work folders under `work`.
let runAll (root: string) (packages: string) (version: string) (work: string) =
    let examples = Path.Combine(root, "examples")
    let nativeCache = Path.Combine(work, "native-cache")
    let environment = [ ("NEURALODE_NATIVE_CACHE", nativeCache) ]
    let expectedRuntimeStatus = if needsGlibcxxFix () then "native backend: LoadedFixedCopy" else "native backend: NotNeeded"
    let consumer name (body: string -> int * string) (expect: string list) =
        printfn "-- consumer: %s" name
        let clock = Stopwatch.StartNew()
        let dir = Path.Combine(work, name)
        userFolder dir packages
        let code, output = try body dir with e -> 1, e.Message
        let missing = expect |> List.filter (fun s -> not (output.Contains s))
        let passed = code = 0 && missing.IsEmpty
        if not passed then
            printfn "   FAILED (exit code %d%s)" code (if missing.IsEmpty then "" else ", missing: " + String.Join("; ", missing))
        { Name = name; Passed = passed; Seconds = clock.Elapsed.TotalSeconds; Output = output }
    let dotnetRun (dir: string) (extra: string list) (args: string list) =
        exec dir environment "dotnet" ([ "run"; "-c"; "Release"; "--nologo" ] @ extra @ ("--" :: args))
    [ consumer "csharp-app" (fun dir ->
          File.WriteAllText(Path.Combine(dir, "Consumer.csproj"), project false "NeuralOde" version)
          File.Copy(Path.Combine(examples, "Quickstart.CSharp", "Program.cs"), Path.Combine(dir, "Program.cs"))
          dotnetRun dir [] []) [ "quickstart ok" ]
      consumer "fsharp-app-core-only" (fun dir ->
          File.WriteAllText(Path.Combine(dir, "Consumer.fsproj"), project true "NeuralOde.Core" version)
          File.Copy(Path.Combine(examples, "Quickstart.FSharp", "Program.fs"), Path.Combine(dir, "Program.fs"))
          dotnetRun dir [] []) [ "quickstart ok" ]
      consumer "fsharp-app-runtime-loader" (fun dir ->
          File.WriteAllText(Path.Combine(dir, "Consumer.fsproj"), project true "NeuralOde.Core" version)
          File.Copy(Path.Combine(examples, "Quickstart.FSharp", "Program.fs"), Path.Combine(dir, "Program.fs"))
          dotnetRun dir [ "-p:NeuralOdeSkipGlibcxxFix=true" ] [ "--ensure-loaded" ]) [ expectedRuntimeStatus; "quickstart ok" ]
      consumer "fsharp-script" (fun dir ->
          // The quickstart as written, but for this run's packages: a #i for their folder, and their version.
          let script = File.ReadAllText(Path.Combine(examples, "quickstart.fsx"))
          let reference = "#r \"nuget: NeuralOde.Core, 0.1.0\""
          if not (script.Contains reference) then failwithf "examples/quickstart.fsx no longer holds %s" reference
          let local = $"#i \"nuget: {packages}\"\n#r \"nuget: NeuralOde.Core, {version}\""
          File.WriteAllText(Path.Combine(dir, "quickstart.fsx"), script.Replace(reference, local))
          exec dir environment "dotnet" [ "fsi"; "quickstart.fsx" ]) [ expectedRuntimeStatus; "quickstart ok" ] ]

/// Removes this run's packages from the NuGet cache (they are named by a version no later run uses).
let forget (version: string) =
    let cache =
        match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
        | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
        | dir -> dir
    for id in [ "neuralode"; "neuralode.core" ] do
        let dir = Path.Combine(cache, id, version)
        if Directory.Exists dir then Directory.Delete(dir, true)

/// Packs, runs every consumer, cleans up; the outcomes.
let run (root: string) (configuration: string) (work: string) =
    if Directory.Exists work then Directory.Delete(work, true)
    let packages = Path.Combine(work, "packages")
    let version = pack root configuration packages
    try runAll root packages version work
    finally forget version
