/// The public surface of NeuralOde.Core is deliberate: every public type is listed in public-types.txt (adding or
/// removing one means editing that file), the implementation modules stay internal, and every public type and
/// member has an XML doc comment. The C# assembly gets the same doc guarantee from the compiler (CS1591 as an
/// error); F# has no such warning, hence this test.
module NeuralOde.Tests.PublicSurface.PublicSurfaceTests

open System
open System.IO
open System.Reflection
open System.Xml.Linq
open Expecto
open Microsoft.FSharp.Reflection

let private core = typeof<NeuralOde.Core.OdeProblem>.Assembly

/// Public types by name (nested types with '.'), without the compiler's union-tag classes.
let publicTypes () =
    core.GetExportedTypes()
    |> Array.filter (fun t -> t.Name <> "Tags")
    |> Array.map (fun t -> t.FullName.Replace('+', '.'))
    |> Array.sort

/// The documented names of the XML doc file, without parameter lists and generic arities: "M:Ns.Type.member".
let private documented () =
    let file = Path.ChangeExtension(core.Location, ".xml")
    Expect.isTrue (File.Exists file) $"{file} exists (GenerateDocumentationFile)"
    XDocument.Load(file).Descendants(XName.Get "member")
    |> Seq.map (fun m ->
        let name = m.Attribute(XName.Get "name").Value
        let name = match name.IndexOf '(' with -1 -> name | i -> name.Substring(0, i)
        match name.IndexOf "``" with -1 -> name | i -> name.Substring(0, i))
    |> Set.ofSeq

let private flags = BindingFlags.Public ||| BindingFlags.NonPublic
let private all = BindingFlags.Public ||| BindingFlags.Instance ||| BindingFlags.Static ||| BindingFlags.DeclaredOnly

/// Members the compiler writes or that take their docs from elsewhere: structural equality and comparison,
/// union tags and case testers/constructors, accessors (the property is checked), enum storage, overrides (the base
/// member's doc applies), and the constructors of records and unions (their fields are documented) and of classes
/// (the primary constructor is documented by the type).
let private exempt (t: Type) (m: MemberInfo) =
    let name = m.Name
    let isUnion = FSharpType.IsUnion(t, flags)
    m.IsDefined(typeof<Runtime.CompilerServices.CompilerGeneratedAttribute>, true)
    || m.IsDefined(typeof<Diagnostics.DebuggerNonUserCodeAttribute>, true)
    || List.contains name [ "Equals"; "GetHashCode"; "CompareTo"; "ToString"; "Tag"; "value__" ]
    || (isUnion && (name.StartsWith "Is" || name.StartsWith "New"))
    || (match m with
        | :? MethodInfo as mi -> mi.IsSpecialName || mi.GetBaseDefinition() <> mi
        | :? ConstructorInfo -> true
        | _ -> false)

/// "T:..." for every public type and "M:/P:/F:/E:..." for every public member that lacks a doc comment.
let undocumented () =
    let docs = documented ()
    [ for t in core.GetExportedTypes() do
        if t.Name <> "Tags" then
            let typeName = t.FullName.Replace('+', '.')
            if not (docs.Contains("T:" + typeName)) then yield "T:" + typeName
            for m in t.GetMembers all do
                if not (exempt t m) then
                    let candidates =
                        match m with
                        | :? MethodInfo -> [ "M" ]
                        | :? PropertyInfo -> [ "P" ]
                        | :? FieldInfo -> [ "F"; "P" ]   // F# documents a [<Literal>] as a property
                        | :? EventInfo -> [ "E" ]
                        | _ -> []
                    if not candidates.IsEmpty && candidates |> List.forall (fun k -> not (docs.Contains $"{k}:{typeName}.{m.Name}")) then
                        yield $"{candidates.Head}:{typeName}.{m.Name}" ]
    |> List.distinct
    |> List.sort

/// Modules that implement the library and must not be part of its surface.
let implementationModules =
    [ "AdjointFunction"; "AdjointSystem"; "BackwardFailure"; "DenseOutputEval"; "ErrorNorm"; "InitialStep"; "Integrate"
      "PIController"; "RungeKuttaStep"; "RunningLoss"; "Internal.FlatState"; "Internal.Guard"; "Internal.SafeAutograd"
      "Internal.TensorOps" ]

[<Tests>]
let tests =
    testList "PublicSurface" [
        test "every public type and member of NeuralOde.Core has an XML doc comment" {
            let missing = undocumented ()
            Expect.isEmpty missing $"""undocumented public API (add /// comments):{Environment.NewLine}{String.Join(Environment.NewLine, missing)}"""
        }
        test "the public types are exactly those listed in public-types.txt" {
            let listed =
                File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "public-types.txt"))
                |> Array.map (fun l -> l.Trim()) |> Array.filter (fun l -> l <> "" && not (l.StartsWith "#")) |> Array.sort
            let actual = publicTypes ()
            let added = Array.except listed actual
            let removed = Array.except actual listed
            Expect.isTrue (added.Length = 0 && removed.Length = 0)
                $"public types changed: added %A{added}, removed %A{removed}. If deliberate, update tests/NeuralOde.Core.Tests/PublicSurface/public-types.txt."
        }
        test "the implementation modules are internal" {
            for name in implementationModules do
                let t = core.GetType("NeuralOde.Core." + name.Replace("Internal.", "Internal."))
                Expect.isNotNull t $"{name} exists"
                Expect.isFalse t.IsPublic $"{name} is internal"
        }
    ]
