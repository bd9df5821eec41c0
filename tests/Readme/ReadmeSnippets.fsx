// The C# and F# code blocks of the README, the packages' readmes and docs/*.md, compiled and run as written (loaded by
// build.fsx, target test).
//
// Every C# block is a complete program for a new console app (`dotnet new console`: implicit usings on); every F#
// block a complete script. To run them all in one build, each C# block becomes a class in its own namespace — its
// using directives and type declarations stay at file level, its statements go into a method — and each F# block a
// module of one script, its opens and types at module level and its statements in a function. `#line` directives
// point compiler errors at README.md. An F# block's `#r "nuget: ..."` lines are served by the build's DLLs here; the
// package route itself is run by tests/Consumers.
module ReadmeSnippets

#load "../Scripts/Exec.fsx"

open System
open System.Diagnostics
open System.IO
open System.Text
open System.Text.RegularExpressions

/// One code block: its language, the README line of its first code line, its lines.
type Snippet = { File: string; Path: string; Language: string; Line: int; Lines: string[] }

/// One block's result.
type Outcome = { Name: string; Passed: bool; Output: string }

/// The ```csharp and ```fsharp blocks of a markdown file: `file` names it in messages, `path` in #line directives.
let extract (file: string) (path: string) (markdown: string[]) =
    let mutable current: (string * int * ResizeArray<string>) option = None
    [ for i, line in Array.indexed markdown do
        match current with
        | None ->
            match line.Trim() with
            | "```csharp" -> current <- Some("csharp", i + 2, ResizeArray())
            | "```fsharp" -> current <- Some("fsharp", i + 2, ResizeArray())
            | _ -> ()
        | Some(language, start, lines) ->
            if line.Trim() = "```" then
                yield { File = file; Path = path; Language = language; Line = start; Lines = lines.ToArray() }
                current <- None
            else lines.Add line ]

let private csDirective = Regex(@"^using\s+(static\s+)?[\w.]+(\s*=\s*[\w.<>, ]+)?\s*;\s*(//.*)?$")
let private csType = Regex(@"^(public |internal |sealed |abstract |static |partial )*(class|record|struct|interface|enum)\s")

/// The lines of a block with their README line numbers.
let private numbered (s: Snippet) = s.Lines |> Array.mapi (fun i line -> s.Line + i, line) |> List.ofArray

/// The C# file of block number `n`: using directives and type declarations (from a column-0 declaration to a
/// column-0 '}', or a one-line record) at file level, the statements in Block.Run.
let csharpFile (n: int) (s: Snippet) =
    let directives, types, body = ResizeArray(), ResizeArray(), ResizeArray()
    // What a pasted program would refuse: a using directive after a statement, a statement after a type.
    let misplaced = ResizeArray<int * string>()
    let isCode (text: string) = text.Trim() <> "" && not (text.TrimStart().StartsWith "//")
    let mutable inType = false
    for (number, text) as line in numbered s do
        if inType then
            types.Add line
            if text = "}" then inType <- false
        elif csDirective.IsMatch text then
            if body |> Seq.exists (snd >> isCode) then misplaced.Add(number, "a using directive after a statement")
            directives.Add line
        elif csType.IsMatch text then
            types.Add line
            inType <- not (text.TrimEnd().EndsWith ";" || text.TrimEnd().EndsWith "}")
        else
            if types.Count > 0 && isCode text then misplaced.Add(number, "a statement after a type declaration")
            body.Add line
    let sb = StringBuilder()
    let emit (line: int, text: string) = sb.AppendLine($"#line {line} \"{s.Path}\"").AppendLine(text) |> ignore
    for line, what in misplaced do emit (line, $"#error {what}: a program pasted from this block would not compile")
    Seq.iter emit directives
    sb.AppendLine("#line default").AppendLine($"namespace Readme.Snippet{n:D2};").AppendLine("static class Block { public static void Run() {") |> ignore
    Seq.iter emit body
    sb.AppendLine("#line default").AppendLine("} }") |> ignore
    Seq.iter emit types
    sb.ToString()

/// The F# module of block number `n`: opens and type definitions (a column-0 `type` or attribute line and the
/// indented lines after it) at module level, the rest in `run ()`. `#r` lines are dropped: the prelude references
/// the build's DLLs.
let fsharpModule (n: int) (s: Snippet) =
    let fileLevel, body = ResizeArray(), ResizeArray()
    let mutable inType = false
    for (_, text) as line in numbered s do
        if inType && (text.StartsWith " " || text.Trim() = "") then fileLevel.Add line
        else
            inType <- false
            if text.StartsWith "#r " then ()
            elif text.StartsWith "open " then fileLevel.Add line
            elif text.StartsWith "type " || text.StartsWith "[<" then
                fileLevel.Add line
                inType <- true
            else body.Add line
    let sb = StringBuilder()
    let indent (depth: int) (line: int, text: string) =
        sb.AppendLine($"# {line} \"{s.Path}\"").AppendLine(String(' ', depth) + text) |> ignore
    sb.AppendLine($"module Snippet{n:D2} =") |> ignore
    Seq.iter (indent 4) fileLevel
    sb.AppendLine("    let run () =") |> ignore
    Seq.iter (indent 8) body
    sb.AppendLine("        ()") |> ignore
    sb.ToString()

/// Runs a program, returning its exit code and output; killed after 10 minutes.
let private exec (workDir: string) (program: string) (args: string list) = Exec.run false (TimeSpan.FromMinutes 10.0) workDir [] program args

/// Reads the per-block verdict lines ("snippet NN: passed" / "snippet NN: FAILED ...") a runner printed; a block
/// without a line failed (the build or the script did not get that far).
let private verdicts (language: string) (snippets: (int * Snippet) list) (code: int) (output: string) =
    [ for n, s in snippets do
        let name = $"{language} block at {s.File} line {s.Line}"
        let passed = output.Contains $"snippet {n:D2}: passed"
        yield { Name = name; Passed = passed && (code = 0 || not (output.Contains $"snippet {n:D2}: FAILED")); Output = output } ]

/// Builds and runs the C# blocks as one console app referencing the C# project.
let runCsharp (root: string) (work: string) (snippets: (int * Snippet) list) =
    let dir = Path.Combine(work, "csharp")
    if Directory.Exists dir then Directory.Delete(dir, true)
    Directory.CreateDirectory dir |> ignore
    File.WriteAllText(Path.Combine(dir, "ReadmeSnippets.csproj"), $"""<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><ImplicitUsings>enable</ImplicitUsings><NoWarn>$(NoWarn);CS8321;CS0219;CS0168</NoWarn></PropertyGroup>
  <ItemGroup>
    <ProjectReference Include="{Path.Combine(root, "src", "NeuralOde", "NeuralOde.csproj")}" />
    <PackageReference Include="libtorch-cpu-linux-x64" />
  </ItemGroup>
</Project>""")
    for n, s in snippets do File.WriteAllText(Path.Combine(dir, $"Snippet{n:D2}.cs"), csharpFile n s)
    let calls =
        snippets
        |> List.map (fun (n, _) ->
            $"""        try {{ Readme.Snippet{n:D2}.Block.Run(); Console.WriteLine("snippet {n:D2}: passed"); }}
        catch (Exception e) {{ failed++; Console.WriteLine("snippet {n:D2}: FAILED " + e); }}""")
        |> String.concat "\n"
    File.WriteAllText(Path.Combine(dir, "Program.cs"), $$"""
static class Program
{
    static int Main()
    {
        int failed = 0;
{{calls}}
        return failed;
    }
}""")
    let code, output = exec dir "dotnet" [ "run"; "-c"; "Release"; "--nologo" ]
    verdicts "C#" snippets code output

/// Runs the F# blocks as one script against the build's DLLs.
let runFsharp (root: string) (work: string) (snippets: (int * Snippet) list) =
    let dir = Path.Combine(work, "fsharp")
    if Directory.Exists dir then Directory.Delete(dir, true)
    Directory.CreateDirectory dir |> ignore
    let bin = Path.Combine(root, "tests", "NeuralOde.Core.Tests", "bin", "Release", "net10.0")
    let sb = StringBuilder()
    for dll in [ "TorchSharp.dll"; "NeuralOde.Core.dll" ] do
        let path = Path.Combine(bin, dll)
        sb.AppendLine($"#r @\"{path}\"") |> ignore
    sb.AppendLine("NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore") |> ignore
    for n, s in snippets do sb.Append(fsharpModule n s) |> ignore
    sb.AppendLine("let mutable failed = 0") |> ignore
    for n, _ in snippets do
        sb.AppendLine($"try Snippet{n:D2}.run (); printfn \"snippet {n:D2}: passed\"")
          .AppendLine($"with e -> failed <- failed + 1; printfn \"snippet {n:D2}: FAILED %%O\" e") |> ignore
    sb.AppendLine("exit failed") |> ignore
    File.WriteAllText(Path.Combine(dir, "Snippets.fsx"), sb.ToString())
    let code, output = exec dir "dotnet" [ "fsi"; "--quiet"; "Snippets.fsx" ]
    verdicts "F#" snippets code output

/// The markdown files whose blocks are run: the repository's README, the two packages' readmes and every page of
/// docs/ (the tutorials are scripts, run by tests/Docs/).
let documents (root: string) =
    [ "README.md"; "src/NeuralOde/PackageReadme.md"; "src/NeuralOde.Core/PackageReadme.md"
      yield! Directory.GetFiles(Path.Combine(root, "docs"), "*.md")
             |> Array.sort
             |> Array.map (fun f -> Path.GetRelativePath(root, f).Replace('\\', '/')) ]

/// Every block of those files, by language; prints failures with the output that explains them.
let run (root: string) (work: string) =
    let snippets =
        documents root
        |> List.collect (fun file -> let path = Path.Combine(root, file) in extract file path (File.ReadAllLines path))
        |> List.indexed
    let of' language = snippets |> List.filter (fun (_, s) -> s.Language = language)
    let outcomes = runCsharp root work (of' "csharp") @ runFsharp root work (of' "fsharp")
    let failedOutputs = outcomes |> List.filter (fun o -> not o.Passed) |> List.map (fun o -> o.Output) |> List.distinct
    for output in failedOutputs do
        printfn "%s" (output.Split('\n') |> Array.filter (fun l -> l.Contains ".md(" || l.Contains "FAILED" || l.Contains "error") |> Array.truncate 40 |> String.concat "\n")
    outcomes
