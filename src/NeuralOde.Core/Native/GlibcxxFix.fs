/// The edit that makes TorchSharp 0.107.0's native shim (libLibTorchSharp.so) load where the system's libstdc++
/// predates GCC 13 (Debian 12, Ubuntu 22.04), done at run time by `NativeBackend.ensureLoaded`.
///
/// Why: the shim was linked with GCC 13's <iostream>, which calls std::ios_base_library_init()
/// (_ZSt21ios_base_library_initv) tagged with the symbol version GLIBCXX_3.4.32 — the only symbol it needs from that
/// version. GCC 12's libstdc++ lacks the version, so the loader refuses the whole library. The function only sets up
/// the iostream objects, which GCC 12's libstdc++ already does in its own static constructors.
///
/// What: three same-size edits of a copy of the file: the version requirement is marked weak (VER_FLG_WEAK in
/// .gnu.version_r), the symbol is made unversioned (.gnu.version index 1) and its name in .dynstr is overwritten
/// with "sched_yield" (a libc function with no arguments and no effect that matters). Any file that is not exactly
/// what this expects is refused with the reason.
///
/// The same edit is done at build time by build/native/GlibcxxPatch.cs (C#, because MSBuild's inline tasks compile
/// only C#; it fixes the build output of apps). A C# test checks that both produce the same bytes on the real file
/// and refuse the same crafted files.
module NeuralOde.Core.Native.GlibcxxFix

open System
open System.IO
open System.Text

/// What `patchImage` did to an image.
type GlibcxxFixOutcome =
    /// The image was edited.
    | Patched
    /// The image already carried the edit; nothing changed.
    | AlreadyPatched
    /// The image does not require GLIBCXX_3.4.32; nothing changed.
    | NotNeeded

/// The symbol version the shim asks for and GCC 12's libstdc++ lacks.
[<Literal>]
let RequiredVersion = "GLIBCXX_3.4.32"

/// The one symbol that requires it.
[<Literal>]
let Symbol = "_ZSt21ios_base_library_initv"

/// The libc function the reference is bound to instead.
[<Literal>]
let Replacement = "sched_yield"

let private libstdcxxCandidates =
    [ "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"; "/lib/x86_64-linux-gnu/libstdc++.so.6"
      "/usr/lib/aarch64-linux-gnu/libstdc++.so.6"; "/usr/lib64/libstdc++.so.6"; "/usr/lib/libstdc++.so.6" ]

/// First index of `needle` in `haystack` at or after `start`, or -1.
let indexOf (haystack: byte[]) (needle: byte[]) (start: int) =
    haystack.AsSpan(start).IndexOf(ReadOnlySpan needle) |> fun i -> if i < 0 then -1 else i + start

/// Some true when the libstdc++ at `path` (or, given None, the first found in the usual places) defines
/// GLIBCXX_3.4.32, Some false when it does not, None when there is none.
let libstdcxxHasRequiredVersion (path: string option) =
    let candidates = match path with Some p -> [ p ] | None -> libstdcxxCandidates
    candidates
    |> List.tryFind File.Exists
    |> Option.bind (fun p ->
        try Some(indexOf (File.ReadAllBytes p) (Encoding.ASCII.GetBytes(RequiredVersion + "\000")) 0 >= 0)
        with :? IOException | :? UnauthorizedAccessException -> None)

[<Struct>]
type private Section = { Type: uint32; Offset: int64; Size: int64; Link: uint32; Info: uint32 }

/// The few bounds-checked reads of an ELF64 little-endian image the edit needs.
type private Elf64(image: byte[], name: string) =
    let refuse (why: string) =
        InvalidDataException(
            $"NeuralOde cannot apply the {RequiredVersion} fix to '{name}': {why}. Use a system with GCC 13's "
            + "libstdc++ or newer (Debian 13, Ubuntu 24.04), or report this with the TorchSharp version.")
    let check (at: int64) (width: int) =
        if at < 0L || at + int64 width > int64 image.Length then
            raise (refuse $"a read at offset {at} runs past the end of the file ({image.Length} bytes)")
    let u16 at = check at 2; BitConverter.ToUInt16(image, int at)
    let u32 at = check at 4; BitConverter.ToUInt32(image, int at)
    let u64 at = check at 8; BitConverter.ToUInt64(image, int at)
    do
        if image.Length < 64 || image[0] <> 0x7fuy || image[1] <> byte 'E' || image[2] <> byte 'L' || image[3] <> byte 'F' then
            raise (refuse "it is not an ELF file")
        if image[4] <> 2uy || image[5] <> 1uy then
            raise (refuse $"it is not 64-bit little-endian ELF (class {image[4]}, data {image[5]})")
    let sections =
        let shoff = int64 (u64 0x28L)
        let entrySize, count = int (u16 0x3AL), int (u16 0x3CL)
        if entrySize <> 64 || count = 0 then raise (refuse $"unexpected section header table (entry size {entrySize}, count {count})")
        Array.init count (fun i ->
            let h = shoff + int64 i * 64L
            { Type = u32 (h + 4L); Offset = int64 (u64 (h + 24L)); Size = int64 (u64 (h + 32L))
              Link = u32 (h + 40L); Info = u32 (h + 44L) })
    member _.Refuse why = refuse why
    member _.U16 at = u16 at
    member _.U32 at = u32 at
    member _.WriteU16(at: int64, value: uint16) = check at 2; BitConverter.GetBytes(value).CopyTo(image, int at)
    member _.Single(sectionType: uint32, what: string) =
        match sections |> Array.filter (fun s -> s.Type = sectionType) with
        | [| s |] -> s
        | [||] -> raise (refuse $"it has no {what} section")
        | _ -> raise (refuse $"it has more than one {what} section")
    member _.Section(index: int, what: string) =
        if index > 0 && index < sections.Length then sections[index]
        else raise (refuse $"{what} has an invalid section index {index}")
    /// .dynstr offsets named by DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH entries.
    member _.DynamicStringReferences() =
        [ for s in sections do
            if s.Type = 6u then
                let mutable e = s.Offset
                while e + 16L <= s.Offset + s.Size do
                    let tag = u64 e
                    if tag = 1UL || tag = 14UL || tag = 15UL || tag = 29UL then yield uint32 (u64 (e + 8L))
                    e <- e + 16L ]
    member _.String(table: Section, offset: uint32) =
        if int64 offset >= table.Size then raise (refuse $"a string offset {offset} lies outside .dynstr")
        let start = table.Offset + int64 offset
        check start 1
        let mutable finish = start
        while finish < table.Offset + table.Size && finish < int64 image.Length && image[int finish] <> 0uy do
            finish <- finish + 1L
        Encoding.ASCII.GetString(image, int start, int (finish - start))

let private shtDynsym = 11u
let private shtVerneed = 0x6ffffffeu
let private shtVersym = 0x6fffffffu
let private verFlagWeak = 2us
let private verIndexGlobal = 1us

/// Applies the edit to an ELF image in memory; `name` is used in messages. Raises InvalidDataException, naming the
/// file and the reason, when the image is not what the edit expects.
let patchImage (image: byte[]) (name: string) =
    let elf = Elf64(image, name)
    let verneed = elf.Single(shtVerneed, ".gnu.version_r")
    let versym = elf.Single(shtVersym, ".gnu.version")
    let dynsym = elf.Single(shtDynsym, ".dynsym")
    let dynstr = elf.Section(int dynsym.Link, ".dynstr (linked from .dynsym)")
    let referenced = Collections.Generic.List<uint32>()
    // The vernaux entry of the required version; its vna_other is the version index the symbols carry.
    let mutable auxOffset, versionIndex = -1L, 0us
    // Entries are chained by their vn_next / vna_next offsets; a zero offset ends a chain (so a crafted count
    // cannot make this loop longer than the file).
    let mutable need, needs = verneed.Offset, verneed.Info
    while needs > 0u do
        referenced.Add(elf.U32(need + 4L))
        let mutable aux, auxes = need + int64 (elf.U32(need + 8L)), elf.U16(need + 2L)
        while auxes > 0us do
            let auxName = elf.U32(aux + 8L)
            referenced.Add auxName
            if elf.String(dynstr, auxName) = RequiredVersion then
                auxOffset <- aux
                versionIndex <- elf.U16(aux + 6L) &&& 0x7fffus
            let next = elf.U32(aux + 12L)
            aux <- aux + int64 next
            auxes <- if next = 0u then 0us else auxes - 1us
        let next = elf.U32(need + 12L)
        need <- need + int64 next
        needs <- if next = 0u then 0u else needs - 1u
    if auxOffset < 0L then NotNeeded
    else
        // Every symbol tagged with that version must be the one this edit knows how to redirect.
        let tagged = Collections.Generic.List<int64>()
        let mutable nameOffset = 0u
        for s in 0L .. dynsym.Size / 24L - 1L do
            let stName = elf.U32(dynsym.Offset + s * 24L)
            referenced.Add stName
            if elf.U16(versym.Offset + s * 2L) &&& 0x7fffus = versionIndex then
                let symbolName = elf.String(dynstr, stName)
                if symbolName <> Symbol then
                    raise (elf.Refuse $"symbol '{symbolName}' also requires {RequiredVersion}; only '{Symbol}' can be redirected, so this file cannot be fixed by this edit")
                tagged.Add s
                nameOffset <- stName
        let weak = elf.U16(auxOffset + 4L) &&& verFlagWeak <> 0us
        if tagged.Count = 0 && weak then AlreadyPatched
        else
            if tagged.Count > 0 then
                // The name's bytes must not be shared with another string (linkers merge string tails).
                referenced.AddRange(elf.DynamicStringReferences())
                let finish = nameOffset + uint32 Symbol.Length
                for r in referenced do
                    if r > nameOffset && r <= finish then
                        raise (elf.Refuse $"the bytes of '{Symbol}' in .dynstr are shared with another name (offset {r}); overwriting them would corrupt it")
                let replacement = Array.zeroCreate<byte> Symbol.Length
                Encoding.ASCII.GetBytes(Replacement).CopyTo(replacement, 0)
                replacement.CopyTo(image, int (dynstr.Offset + int64 nameOffset))
                for s in tagged do elf.WriteU16(versym.Offset + s * 2L, verIndexGlobal)
            elf.WriteU16(auxOffset + 4L, elf.U16(auxOffset + 4L) ||| verFlagWeak)
            Patched
