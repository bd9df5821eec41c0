// The documentation site and the tutorials (loaded by build.fsx: targets docs and test).
//
// Tutorials: each docs/tutorials/NN-*.fsx runs as `dotnet fsi <script> --quick` against the build's DLLs, and each C#
// file-based app docs/tutorials/csharp/*.cs as `dotnet run <file> -- --quick` against the library's project; each
// checks its own claim and exits 1 when it does not hold; figures go to out/tutorials/.
// Site: fsdocs (the local tool in .config/dotnet-tools.json) turns docs/ (markdown pages and the literate tutorial
// scripts) and the XML docs of both assemblies into out/docs/; then every link and image of every page is resolved:
// a relative or site-absolute address must name a file of the site, and a #fragment an id on that page.
module DocsSite

#load "../Scripts/Exec.fsx"

open System
open System.IO
open System.Text.RegularExpressions

/// One check's result.
type Outcome = { Name: string; Passed: bool; Output: string }

/// The tutorial scripts, in order, then the C# file-based apps (docs/tutorials/csharp/*.cs).
let tutorials (root: string) =
    let dir = Path.Combine(root, "docs", "tutorials")
    Array.append
        (Directory.GetFiles(dir, "*.fsx") |> Array.filter (fun f -> Char.IsDigit (Path.GetFileName f).[0]) |> Array.sort)
        (Directory.GetFiles(Path.Combine(dir, "csharp"), "*.cs") |> Array.sort)

/// Runs every tutorial (in quick mode when asked); figures to `figures`.
let runTutorials (root: string) (figures: string) (quick: bool) =
    Directory.CreateDirectory figures |> ignore
    [ for script in tutorials root do
        let csharp = script.EndsWith ".cs"
        let name = (if csharp then "csharp/" else "") + Path.GetFileNameWithoutExtension script
        let started = DateTime.UtcNow
        let args =
            if csharp then [ "run"; script; "--" ] @ (if quick then [ "--quick" ] else [])
            else [ "fsi"; script ] @ (if quick then [ "--quick" ] else [])
        let code, output = Exec.run false (TimeSpan.FromMinutes 10.0) root [ ("NEURALODE_TUTORIAL_OUT", figures) ] "dotnet" args
        let seconds = (DateTime.UtcNow - started).TotalSeconds
        printfn "tutorial %s: %s (%.0f s)" name (if code = 0 then "passed" else "FAILED") seconds
        if code <> 0 then printfn "%s" output
        yield { Name = $"tutorial {name}"; Passed = (code = 0); Output = output } ]

let private attribute = Regex(@"(?:href|src)\s*=\s*""([^""]*)""", RegexOptions.Compiled)
// fsdocs marks a heading's target with <a name="...">, other elements with id.
let private ids = Regex(@"\s(?:id|name)\s*=\s*""([^""]*)""", RegexOptions.Compiled)

/// The broken links of the site in `site` whose pages address it under `rootPrefix` (e.g. "/"): (page, address, why).
let brokenLinks (site: string) (rootPrefix: string) =
    let site = Path.GetFullPath site
    let pages = Directory.GetFiles(site, "*.html", SearchOption.AllDirectories)
    let idCache = Collections.Generic.Dictionary<string, Set<string>>()
    let idsOf (page: string) =
        match idCache.TryGetValue page with
        | true, s -> s
        | _ ->
            let s = ids.Matches(File.ReadAllText page) |> Seq.map (fun m -> m.Groups[1].Value) |> Set.ofSeq
            idCache[page] <- s
            s
    [ for page in pages do
        let text = File.ReadAllText page
        for m in attribute.Matches text do
            let address = Net.WebUtility.HtmlDecode m.Groups[1].Value
            let external = Regex.IsMatch(address, "^[a-zA-Z][a-zA-Z0-9+.-]*:") || address.StartsWith "//"
            if not external && address <> "" && not (address.Contains "{{") then
                let path, fragment =
                    match address.IndexOf '#' with
                    | -1 -> address, None
                    | i -> address.Substring(0, i), Some(address.Substring(i + 1))
                let path = match path.IndexOf '?' with -1 -> path | i -> path.Substring(0, i)
                let target =
                    if path = "" then Some page
                    elif path.StartsWith rootPrefix then Some(Path.Combine(site, Uri.UnescapeDataString(path.Substring rootPrefix.Length)))
                    elif path.StartsWith "/" then None
                    else Some(Path.GetFullPath(Path.Combine(Path.GetDirectoryName page, Uri.UnescapeDataString path)))
                let relative = Path.GetRelativePath(site, page)
                match target with
                | None -> yield relative, address, "outside the site's root"
                | Some t ->
                    let file = if Directory.Exists t then Path.Combine(t, "index.html") else t
                    if not (File.Exists file) then yield relative, address, "no such file"
                    else
                        match fragment with
                        | Some f when f <> "" && file.EndsWith ".html" && not (idsOf file |> Set.contains (Uri.UnescapeDataString f)) ->
                            yield relative, address, "no such id on the page"
                        | _ -> () ]

/// Builds the site into `site` (cleaned first) with fsdocs, copies the tutorials' figures from `figures` next to their
/// pages, and checks it: the build must succeed with no error or warning about the content (a tutorial that does
/// not type-check, a broken cross-reference) and no link may be broken.
let build (root: string) (site: string) (figures: string) (rootPrefix: string) =
    let exec (limit: float) args = Exec.run false (TimeSpan.FromMinutes limit) root [] "dotnet" args
    let restoreCode, restoreOutput = exec 5.0 [ "tool"; "restore" ]
    if restoreCode <> 0 then
        [ { Name = "docs site builds"; Passed = false; Output = "dotnet tool restore failed:\n" + restoreOutput } ]
    else
    // A stale project cache makes fsdocs read another configuration's assemblies.
    let cache = Path.Combine(root, ".fsdocs")
    if Directory.Exists cache then Directory.Delete(cache, true)
    let code, output =
        exec 10.0 [ "fsdocs"; "build"; "--input"; "docs"; "--output"; site; "--clean"; "--strict"
                    "--projects"; "src/NeuralOde.Core/NeuralOde.Core.fsproj"; "src/NeuralOde/NeuralOde.csproj"
                    "--properties"; "Configuration=Release"
                    "--parameters"; "root"; rootPrefix; "fsdocs-logo-src"; "img/logo.png"; "fsdocs-favicon-src"; "img/logo.png"
                    "fsdocs-package-project-url"; "https://www.nuget.org/packages/NeuralOde"; "fsdocs-collection-name"; "NeuralOde" ]
    let problems =
        output.Split('\n')
        |> Array.filter (fun l ->
            let t = l.Trim()
            // Problems with the content: a tutorial or page that does not type-check, a cross-reference fsdocs cannot
            // resolve (its own housekeeping, e.g. cleaning a missing folder, is not one).
            t.Contains ": error(" || t.Contains ": warning(" || t.Contains "Unhandled exception"
            || (t.StartsWith "warning" && not (t.Contains "error during cleaning")))
    let built = { Name = "docs site builds without errors or warnings"; Passed = (code = 0 && problems.Length = 0)
                  Output = if problems.Length > 0 then String.Join("\n", problems) else output }
    if code <> 0 then [ built ]
    else
        let tutorialsOut = Path.Combine(site, "tutorials")
        if Directory.Exists figures && Directory.Exists tutorialsOut then
            for png in Directory.GetFiles(figures, "*.png") do File.Copy(png, Path.Combine(tutorialsOut, Path.GetFileName png), true)
        let broken = brokenLinks site rootPrefix
        let text = broken |> List.truncate 40 |> List.map (fun (page, address, why) -> $"{page}: {address} ({why})") |> String.concat "\n"
        let pages = Directory.GetFiles(site, "*.html", SearchOption.AllDirectories).Length
        [ built
          { Name = $"docs site links ({pages} pages)"
            Passed = broken.IsEmpty
            Output = if broken.IsEmpty then "" else $"{broken.Length} broken link(s):\n{text}" } ]
