using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using NeuralOde.Build;
// The run-time twin of the build's edit, in the F# core: compared here byte for byte (a test of the build tooling,
// not of the C# API, which never needs this namespace).
using RuntimeFix = NeuralOde.Core.Native.GlibcxxFix;

namespace NeuralOde.Tests;

/// <summary>
/// The build's edit of TorchSharp's native shim (build/native/GlibcxxPatch.cs), tested on the shipped file from the
/// NuGet cache (copied; the cache itself is only read).
/// </summary>
public class GlibcxxPatchTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("neuralode-patch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string ShippedLibrary()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"TorchSharp's shipped native shim is expected at {path}");
        return path;
    }

    string CopyOfShipped()
    {
        var copy = Path.Combine(_dir, "libLibTorchSharp.so");
        File.Copy(ShippedLibrary(), copy);
        return copy;
    }

    [Fact]
    public void PatchEditsOnlyTheThreePlacesAndKeepsTheSize()
    {
        var original = File.ReadAllBytes(ShippedLibrary());
        var path = CopyOfShipped();
        Assert.Equal(GlibcxxPatchOutcome.Patched, GlibcxxPatch.PatchFile(path));
        var patched = File.ReadAllBytes(path);
        Assert.Equal(original.Length, patched.Length);
        int changed = 0;
        for (int i = 0; i < original.Length; i++) if (original[i] != patched[i]) changed++;
        // At most: one flag byte, one two-byte version index, the 28 bytes of the symbol's name.
        Assert.InRange(changed, 3, 1 + 2 + GlibcxxPatch.Symbol.Length);
        // The dynamic string table's copy is renamed; the static .strtab copy (not read by the loader) stays.
        Assert.Equal(Occurrences(original, GlibcxxPatch.Symbol) - 1, Occurrences(patched, GlibcxxPatch.Symbol));
        Assert.Equal(Occurrences(original, "\0" + GlibcxxPatch.Replacement + "\0") + 1,
                     Occurrences(patched, "\0" + GlibcxxPatch.Replacement + "\0"));
    }

    [Fact]
    public void PatchIsIdempotent()
    {
        var path = CopyOfShipped();
        GlibcxxPatch.PatchFile(path);
        var once = File.ReadAllBytes(path);
        Assert.Equal(GlibcxxPatchOutcome.AlreadyPatched, GlibcxxPatch.PatchFile(path));
        Assert.Equal(once, File.ReadAllBytes(path));
    }

    [Fact]
    public void PatchReplacesAHardLinkInsteadOfWritingThroughIt()
    {
        if (!OperatingSystem.IsLinux()) return;
        var source = CopyOfShipped();
        var link = Path.Combine(_dir, "linked.so");
        Assert.Equal(0, link_(source, link));
        var before = File.ReadAllBytes(source);
        GlibcxxPatch.PatchFile(link);
        Assert.Equal(before, File.ReadAllBytes(source));
        Assert.NotEqual(before, File.ReadAllBytes(link));
    }

    [Fact]
    public void RefusesAFileThatIsNotElf()
    {
        var path = Path.Combine(_dir, "not-elf.so");
        File.WriteAllText(path, "this is not a shared library, but it is long enough to have an ELF header's size....");
        var e = Assert.Throws<InvalidDataException>(() => GlibcxxPatch.PatchFile(path));
        Assert.Contains("not-elf.so", e.Message);
        Assert.Contains("not an ELF file", e.Message);
    }

    [Fact]
    public void RefusesWhenAnotherSymbolNeedsTheVersion()
    {
        // Tag a second symbol with GLIBCXX_3.4.32 by copying the known symbol's version index onto its neighbour.
        var image = File.ReadAllBytes(ShippedLibrary());
        var (versym, index) = FindVersymEntryOfSymbol(image);
        var neighbour = versym + (index > 1 ? index - 1 : index + 1) * 2;
        image[neighbour] = image[versym + index * 2];
        image[neighbour + 1] = image[versym + index * 2 + 1];
        var e = Assert.Throws<InvalidDataException>(() => GlibcxxPatch.PatchImage(image, "crafted.so"));
        Assert.Contains("also requires GLIBCXX_3.4.32", e.Message);
    }

    [Fact]
    public void LeavesAFileWithoutTheRequirementAlone()
    {
        var image = File.ReadAllBytes(ShippedLibrary());
        // Rename the version string so no entry asks for GLIBCXX_3.4.32.
        var needle = Encoding.ASCII.GetBytes("GLIBCXX_3.4.32\0");
        var at = GlibcxxPatch.IndexOf(image, needle, 0);
        Assert.True(at >= 0);
        image[at + 13] = (byte)'1';
        Assert.Equal(GlibcxxPatchOutcome.NotNeeded, GlibcxxPatch.PatchImage(image, "other.so"));
    }

    [Fact]
    public void DetectsWhetherTheSystemLibstdcxxHasTheVersion()
    {
        var withVersion = Path.Combine(_dir, "with.so");
        File.WriteAllBytes(withVersion, Encoding.ASCII.GetBytes("xxGLIBCXX_3.4.31\0GLIBCXX_3.4.32\0yy"));
        var without = Path.Combine(_dir, "without.so");
        File.WriteAllBytes(without, Encoding.ASCII.GetBytes("xxGLIBCXX_3.4.30\0GLIBCXX_3.4.31\0yy"));
        Assert.True(GlibcxxPatch.SystemLibstdcxxHasRequiredVersion(withVersion));
        Assert.False(GlibcxxPatch.SystemLibstdcxxHasRequiredVersion(without));
    }

    [Fact]
    public void TheRunTimeFixInTheCoreMakesTheSameBytes()
    {
        var original = File.ReadAllBytes(ShippedLibrary());
        var byBuild = (byte[])original.Clone();
        var byRunTime = (byte[])original.Clone();
        Assert.Equal(GlibcxxPatchOutcome.Patched, GlibcxxPatch.PatchImage(byBuild, "shim"));
        Assert.Equal(RuntimeFix.GlibcxxFixOutcome.Patched, RuntimeFix.patchImage(byRunTime, "shim"));
        Assert.Equal(byBuild, byRunTime);
        Assert.Equal(GlibcxxPatchOutcome.AlreadyPatched, GlibcxxPatch.PatchImage(byRunTime, "shim"));
        Assert.Equal(RuntimeFix.GlibcxxFixOutcome.AlreadyPatched, RuntimeFix.patchImage(byBuild, "shim"));
    }

    [Fact]
    public void TheRunTimeFixRefusesWhatTheBuildRefuses()
    {
        var image = File.ReadAllBytes(ShippedLibrary());
        var (versym, index) = FindVersymEntryOfSymbol(image);
        var neighbour = versym + (index > 1 ? index - 1 : index + 1) * 2;
        image[neighbour] = image[versym + index * 2];
        image[neighbour + 1] = image[versym + index * 2 + 1];
        var byBuild = Assert.Throws<InvalidDataException>(() => GlibcxxPatch.PatchImage((byte[])image.Clone(), "crafted.so"));
        var byRunTime = Assert.Throws<InvalidDataException>(() => RuntimeFix.patchImage((byte[])image.Clone(), "crafted.so"));
        Assert.Equal(byBuild.Message, byRunTime.Message);
        var notElf = Encoding.ASCII.GetBytes(new string('x', 100));
        Assert.Equal(Assert.Throws<InvalidDataException>(() => GlibcxxPatch.PatchImage(notElf, "x.so")).Message,
                     Assert.Throws<InvalidDataException>(() => RuntimeFix.patchImage(notElf, "x.so")).Message);
    }

    static int Occurrences(byte[] image, string text)
    {
        var needle = Encoding.ASCII.GetBytes(text);
        int count = 0;
        for (int at = GlibcxxPatch.IndexOf(image, needle, 0); at >= 0; at = GlibcxxPatch.IndexOf(image, needle, at + 1)) count++;
        return count;
    }

    /// <summary>The .gnu.version offset and the dynamic-symbol index of the redirected symbol.</summary>
    static (int versym, int index) FindVersymEntryOfSymbol(byte[] b)
    {
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        long dynsymOff = 0, dynsymSize = 0, versymOff = 0; uint dynstrIndex = 0;
        for (int i = 0; i < shnum; i++)
        {
            long h = shoff + i * 64L;
            uint type = BitConverter.ToUInt32(b, (int)h + 4);
            if (type == 11) { dynsymOff = BitConverter.ToInt64(b, (int)h + 24); dynsymSize = BitConverter.ToInt64(b, (int)h + 32); dynstrIndex = BitConverter.ToUInt32(b, (int)h + 40); }
            if (type == 0x6fffffff) versymOff = BitConverter.ToInt64(b, (int)h + 24);
        }
        long dynstrOff = BitConverter.ToInt64(b, (int)(shoff + dynstrIndex * 64L + 24));
        for (int s = 0; s < dynsymSize / 24; s++)
        {
            uint name = BitConverter.ToUInt32(b, (int)(dynsymOff + s * 24));
            int start = (int)(dynstrOff + name), end = start;
            while (b[end] != 0) end++;
            if (Encoding.ASCII.GetString(b, start, end - start) == GlibcxxPatch.Symbol) return ((int)versymOff, s);
        }
        throw new InvalidOperationException("symbol not found");
    }

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    static extern int link_(string oldPath, string newPath);
}
