/// The run-time GLIBCXX_3.4.32 edit (Native/GlibcxxFix), on TorchSharp's shipped shim from the NuGet cache (read
/// only; edits happen on copies in memory) and on crafted images. build/native/GlibcxxPatch.cs, the build-time twin,
/// is compared with it byte for byte by the C# tests.
module NeuralOde.Tests.Native.GlibcxxFixTests

open System
open System.IO
open System.Text
open Expecto
open NeuralOde.Core.Native
open NeuralOde.Tests.Support

let private shipped () =
    let root =
        match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
        | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
        | dir -> dir
    let path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")
    Expect.isTrue (File.Exists path) $"TorchSharp's shipped shim is expected at {path}"
    File.ReadAllBytes path

let private occurrences (image: byte[]) (text: string) =
    let needle = Encoding.ASCII.GetBytes text
    let rec count from n = match GlibcxxFix.indexOf image needle from with -1 -> n | at -> count (at + 1) (n + 1)
    count 0 0

/// Offset of the first section header of `sectionType` (ELF64), for crafting images.
let private sectionOffset (image: byte[]) (sectionType: uint32) =
    let shoff = BitConverter.ToInt64(image, 0x28)
    let count = int (BitConverter.ToUInt16(image, 0x3C))
    [ 0 .. count - 1 ]
    |> List.pick (fun i ->
        let h = int shoff + i * 64
        if BitConverter.ToUInt32(image, h + 4) = sectionType then Some(BitConverter.ToInt64(image, h + 24)) else None)

[<Tests>]
let tests =
    testList "Native/GlibcxxFix" [
        test "the shipped shim is edited in three places and keeps its size" {
            let original = shipped ()
            let image = Array.copy original
            Expect.equal (GlibcxxFix.patchImage image "shipped") GlibcxxFix.Patched "edited"
            let changed = Array.fold2 (fun n (a: byte) b -> if a <> b then n + 1 else n) 0 original image
            Expect.isTrue (changed >= 3 && changed <= 1 + 2 + GlibcxxFix.Symbol.Length) $"changed {changed} bytes"
            // .dynstr's copy of the name is overwritten; the static .strtab copy (not read by the loader) stays.
            Expect.equal (occurrences image GlibcxxFix.Symbol) (occurrences original GlibcxxFix.Symbol - 1) "one name renamed"
            Expect.equal (occurrences image ("\000" + GlibcxxFix.Replacement + "\000"))
                         (occurrences original ("\000" + GlibcxxFix.Replacement + "\000") + 1) "bound to sched_yield"
        }
        test "the edit is idempotent" {
            let image = shipped ()
            GlibcxxFix.patchImage image "shipped" |> ignore
            let once = Array.copy image
            Expect.equal (GlibcxxFix.patchImage image "shipped") GlibcxxFix.AlreadyPatched "second edit"
            Expect.sequenceEqual image once "nothing changed"
        }
        test "a file that is not ELF is refused, naming the file" {
            let e = Raises.raises<InvalidDataException> (fun () ->
                GlibcxxFix.patchImage (Encoding.ASCII.GetBytes(String('x', 100))) "not-elf.so" |> ignore)
            Expect.stringContains e.Message "not-elf.so" "names the file"
            Expect.stringContains e.Message "not an ELF file" "says why"
        }
        test "a truncated shim is refused, not read past its end" {
            let image = shipped ()
            let e = Raises.raises<InvalidDataException> (fun () -> GlibcxxFix.patchImage image[.. image.Length / 2] "half.so" |> ignore)
            Expect.stringContains e.Message "half.so" "names the file"
        }
        test "a file without the requirement is left alone" {
            let image = shipped ()
            let at = GlibcxxFix.indexOf image (Encoding.ASCII.GetBytes "GLIBCXX_3.4.32\000") 0
            image[at + 13] <- byte '1'
            let before = Array.copy image
            Expect.equal (GlibcxxFix.patchImage image "other.so") GlibcxxFix.NotNeeded "not needed"
            Expect.sequenceEqual image before "unchanged"
        }
        test "a crafted version-need count with a zero link ends at once" {
            // vn_cnt of .gnu.version_r's count (sh_info) is not trusted beyond the chain: a huge count and a zero
            // vn_next must not loop four billion times.
            let image = shipped ()
            let shoff = BitConverter.ToInt64(image, 0x28)
            let count = int (BitConverter.ToUInt16(image, 0x3C))
            let header = [ 0 .. count - 1 ] |> List.find (fun i -> BitConverter.ToUInt32(image, int shoff + i * 64 + 4) = 0x6ffffffeu)
            BitConverter.GetBytes(UInt32.MaxValue).CopyTo(image, int shoff + header * 64 + 44)
            let verneed = int (sectionOffset image 0x6ffffffeu)
            BitConverter.GetBytes(0u).CopyTo(image, verneed + 12)
            let clock = Diagnostics.Stopwatch.StartNew()
            try GlibcxxFix.patchImage image "crafted.so" |> ignore with :? InvalidDataException -> ()
            Expect.isLessThan clock.Elapsed.TotalSeconds 5.0 "finished promptly"
        }
        test "the system libstdc++ check reads the version strings" {
            let dir = Directory.CreateTempSubdirectory("neuralode-libstdcxx-").FullName
            try
                let withVersion, without = Path.Combine(dir, "with.so"), Path.Combine(dir, "without.so")
                File.WriteAllBytes(withVersion, Encoding.ASCII.GetBytes "xxGLIBCXX_3.4.31\000GLIBCXX_3.4.32\000yy")
                File.WriteAllBytes(without, Encoding.ASCII.GetBytes "xxGLIBCXX_3.4.30\000GLIBCXX_3.4.31\000yy")
                Expect.equal (GlibcxxFix.libstdcxxHasRequiredVersion (Some withVersion)) (Some true) "has it"
                Expect.equal (GlibcxxFix.libstdcxxHasRequiredVersion (Some without)) (Some false) "lacks it"
                Expect.equal (GlibcxxFix.libstdcxxHasRequiredVersion (Some(Path.Combine(dir, "none.so")))) None "no file"
            finally Directory.Delete(dir, true)
        }
    ]
