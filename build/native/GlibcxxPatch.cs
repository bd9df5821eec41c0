// Makes TorchSharp 0.107.0's native shim (libLibTorchSharp.so) load on systems whose libstdc++ predates GCC 13
// (Debian 12, Ubuntu 22.04).
//
// Why: libLibTorchSharp.so was linked with GCC 13's <iostream>, which emits a call to
// std::ios_base_library_init() (mangled _ZSt21ios_base_library_initv) tagged with symbol version GLIBCXX_3.4.32.
// That is the only symbol it needs from that version. GCC 12's libstdc++ does not define GLIBCXX_3.4.32, so the
// dynamic loader refuses the whole library and TorchSharp's `torch` type fails to initialise. libtorch itself loads.
// The function only initialises the iostream objects, which GCC 12's libstdc++ already does in its own static
// constructors, so calling something harmless instead is safe.
//
// What: three in-place byte edits to a copy of the file, none of which changes its size:
//   1. .gnu.version_r: set VER_FLG_WEAK (2) in vna_flags of the GLIBCXX_3.4.32 entry, so a missing version is
//      no longer fatal to the loader;
//   2. .gnu.version: set the symbol's version index to 1 (VER_NDX_GLOBAL, unversioned);
//   3. .dynstr: overwrite the symbol's name with "sched_yield" padded with NUL bytes, a libc function that takes no
//      arguments and has no effect that matters here, so the reference binds there.
// The edited file is written next to the original and renamed over it, so a hard link into the NuGet package cache
// is replaced, never written through. The edit is refused, with a message that says why, whenever the file is not
// what this code expects (not ELF64 little-endian, another symbol needs GLIBCXX_3.4.32, the name's bytes are shared).
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory (build/native/NeuralOde.Native.targets, and the
// same targets shipped in the NeuralOde.Core NuGet package's buildTransitive folder), and into the C# test project with
// NEURALODE_NO_MSBUILD defined, where tests exercise the same code on the real file.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace NeuralOde.Build
{
    /// <summary>What <see cref="GlibcxxPatch.PatchFile"/> did.</summary>
    public enum GlibcxxPatchOutcome
    {
        /// <summary>The file was edited.</summary>
        Patched,
        /// <summary>The file already had the edit; nothing was written.</summary>
        AlreadyPatched,
        /// <summary>The file does not require GLIBCXX_3.4.32; nothing was written.</summary>
        NotNeeded,
    }

    /// <summary>The ELF edit described at the top of this file.</summary>
    public static class GlibcxxPatch
    {
        public const string RequiredVersion = "GLIBCXX_3.4.32";
        public const string Symbol = "_ZSt21ios_base_library_initv";
        public const string Replacement = "sched_yield";

        const uint SHT_DYNAMIC = 6, SHT_DYNSYM = 11, SHT_GNU_verneed = 0x6ffffffe, SHT_GNU_versym = 0x6fffffff;
        const ushort VER_FLG_WEAK = 2, VER_NDX_GLOBAL = 1;

        static readonly string[] LibstdcxxCandidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };

        /// <summary>
        /// True when the system's libstdc++ defines <see cref="RequiredVersion"/> (no edit needed), false when it
        /// does not, null when no libstdc++ was found in the usual places.
        /// </summary>
        public static bool? SystemLibstdcxxHasRequiredVersion(string? libstdcxxPath = null)
        {
            foreach (var path in libstdcxxPath != null ? new[] { libstdcxxPath } : LibstdcxxCandidates)
            {
                if (!File.Exists(path)) continue;
                return IndexOf(File.ReadAllBytes(path), Encoding.ASCII.GetBytes(RequiredVersion + "\0"), 0) >= 0;
            }
            return null;
        }

        /// <summary>Edits the file at <paramref name="path"/> (atomically: temporary file, then rename).</summary>
        public static GlibcxxPatchOutcome PatchFile(string path)
        {
            var image = File.ReadAllBytes(path);
            var outcome = PatchImage(image, path);
            if (outcome != GlibcxxPatchOutcome.Patched) return outcome;
            var temp = path + ".neuralode-patch.tmp";
            // Copy first so the temporary file keeps the original's permissions, then rewrite it and rename it over
            // the original (File.Replace is rename(2) on Unix). This API set also builds under MSBuild's netstandard
            // task compiler.
            File.Copy(path, temp, overwrite: true);
            File.WriteAllBytes(temp, image);
            File.Replace(temp, path, destinationBackupFileName: null);
            return outcome;
        }

        /// <summary>Applies the edit to an ELF image in memory. <paramref name="name"/> is used in messages.</summary>
        public static GlibcxxPatchOutcome PatchImage(byte[] image, string name)
        {
            var elf = new Elf64(image, name);
            var verneed = elf.Single(SHT_GNU_verneed, ".gnu.version_r");
            var versym = elf.Single(SHT_GNU_versym, ".gnu.version");
            var dynsym = elf.Single(SHT_DYNSYM, ".dynsym");
            var dynstr = elf.Section((int)dynsym.Link, ".dynstr (linked from .dynsym)");

            // Find the vernaux entry of the required version; its vna_other is the version index symbols carry.
            long auxOffset = -1;
            ushort versionIndex = 0;
            var referencedNames = new List<uint>();
            // Entries are chained by vn_next / vna_next; a zero offset ends a chain, so a crafted count cannot make
            // these loops longer than the file.
            long need = verneed.Offset;
            for (uint i = 0; i < verneed.Info; i++)
            {
                referencedNames.Add(elf.U32(need + 4)); // vn_file
                long aux = need + elf.U32(need + 8);
                for (int j = 0; j < elf.U16(need + 2); j++)
                {
                    uint auxName = elf.U32(aux + 8);
                    referencedNames.Add(auxName);
                    if (elf.String(dynstr, auxName) == RequiredVersion)
                    {
                        auxOffset = aux;
                        versionIndex = (ushort)(elf.U16(aux + 6) & 0x7fff);
                    }
                    uint nextAux = elf.U32(aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint nextNeed = elf.U32(need + 12);
                if (nextNeed == 0) break;
                need += nextNeed;
            }
            if (auxOffset < 0) return GlibcxxPatchOutcome.NotNeeded;

            // Every symbol tagged with that version must be the one we know how to replace.
            long symbolCount = dynsym.Size / 24;
            var tagged = new List<long>();
            long nameOffset = -1;
            for (long s = 0; s < symbolCount; s++)
            {
                uint stName = elf.U32(dynsym.Offset + s * 24);
                referencedNames.Add(stName);
                if ((elf.U16(versym.Offset + s * 2) & 0x7fff) != versionIndex) continue;
                var symbolName = elf.String(dynstr, stName);
                if (symbolName != Symbol)
                    throw elf.Refuse($"symbol '{symbolName}' also requires {RequiredVersion}; only '{Symbol}' can be redirected, so this file cannot be fixed by this edit");
                tagged.Add(s);
                nameOffset = stName;
            }
            bool weak = (elf.U16(auxOffset + 4) & VER_FLG_WEAK) != 0;
            if (tagged.Count == 0 && weak) return GlibcxxPatchOutcome.AlreadyPatched;

            if (tagged.Count > 0)
            {
                // The name's bytes must not be shared by another string (linkers merge string tails).
                foreach (var d in elf.DynamicStringReferences()) referencedNames.Add(d);
                long end = nameOffset + Symbol.Length;
                foreach (var r in referencedNames)
                    if (r > nameOffset && r <= end)
                        throw elf.Refuse($"the bytes of '{Symbol}' in .dynstr are shared with another name (offset {r}); overwriting them would corrupt it");
                var replacement = new byte[Symbol.Length];
                Encoding.ASCII.GetBytes(Replacement).CopyTo(replacement, 0);
                replacement.CopyTo(image, dynstr.Offset + nameOffset);
                foreach (var s in tagged) elf.WriteU16(versym.Offset + s * 2, VER_NDX_GLOBAL);
            }
            elf.WriteU16(auxOffset + 4, (ushort)(elf.U16(auxOffset + 4) | VER_FLG_WEAK));
            return GlibcxxPatchOutcome.Patched;
        }

        internal static int IndexOf(byte[] haystack, byte[] needle, int start)
        {
            for (int i = start; i <= haystack.Length - needle.Length; i++)
            {
                int k = 0;
                while (k < needle.Length && haystack[i + k] == needle[k]) k++;
                if (k == needle.Length) return i;
            }
            return -1;
        }

        /// <summary>A section header: file offset, size, sh_link, sh_info.</summary>
        internal readonly struct SectionHeader
        {
            public readonly long Offset, Size;
            public readonly uint Type, Link, Info;
            public SectionHeader(uint type, long offset, long size, uint link, uint info)
            { Type = type; Offset = offset; Size = size; Link = link; Info = info; }
        }

        /// <summary>The few reads of an ELF64 little-endian image the edit needs, each bounds-checked.</summary>
        internal sealed class Elf64
        {
            readonly byte[] _b;
            readonly string _name;
            readonly SectionHeader[] _sections;

            public Elf64(byte[] image, string name)
            {
                _b = image;
                _name = name;
                if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                    throw Refuse("it is not an ELF file");
                if (image[4] != 2 || image[5] != 1)
                    throw Refuse($"it is not 64-bit little-endian ELF (class {image[4]}, data {image[5]})");
                long shoff = (long)U64(0x28);
                int shentsize = U16(0x3A), shnum = U16(0x3C);
                if (shentsize != 64 || shnum == 0) throw Refuse($"unexpected section header table (entry size {shentsize}, count {shnum})");
                _sections = new SectionHeader[shnum];
                for (int i = 0; i < shnum; i++)
                {
                    long h = shoff + (long)i * 64;
                    _sections[i] = new SectionHeader(U32(h + 4), (long)U64(h + 24), (long)U64(h + 32), U32(h + 40), U32(h + 44));
                }
            }

            public InvalidDataException Refuse(string why) =>
                new InvalidDataException($"NeuralOde cannot apply the {RequiredVersion} fix to '{_name}': {why}. " +
                    "Use a system with GCC 13's libstdc++ or newer (Debian 13, Ubuntu 24.04), or report this with the TorchSharp version.");

            public SectionHeader Single(uint type, string what)
            {
                SectionHeader? found = null;
                foreach (var s in _sections)
                    if (s.Type == type)
                    {
                        if (found != null) throw Refuse($"it has more than one {what} section");
                        found = s;
                    }
                return found ?? throw Refuse($"it has no {what} section");
            }

            public SectionHeader Section(int index, string what) =>
                index > 0 && index < _sections.Length ? _sections[index] : throw Refuse($"{what} has an invalid section index {index}");

            /// <summary>dynstr offsets named by DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH entries.</summary>
            public IEnumerable<uint> DynamicStringReferences()
            {
                foreach (var s in _sections)
                {
                    if (s.Type != SHT_DYNAMIC) continue;
                    for (long e = s.Offset; e + 16 <= s.Offset + s.Size; e += 16)
                    {
                        ulong tag = U64(e);
                        if (tag == 1 || tag == 14 || tag == 15 || tag == 29) yield return (uint)U64(e + 8);
                    }
                }
            }

            public string String(SectionHeader strtab, uint offset)
            {
                long start = strtab.Offset + offset, end = start;
                if (offset >= strtab.Size) throw Refuse($"a string offset {offset} lies outside .dynstr");
                Check(start, 1);
                while (end < strtab.Offset + strtab.Size && end < _b.Length && _b[end] != 0) end++;
                return Encoding.ASCII.GetString(_b, (int)start, (int)(end - start));
            }

            void Check(long at, int width)
            {
                if (at < 0 || at + width > _b.Length) throw Refuse($"a read at offset {at} runs past the end of the file ({_b.Length} bytes)");
            }

            public ushort U16(long at) { Check(at, 2); return BitConverter.ToUInt16(_b, (int)at); }
            public uint U32(long at) { Check(at, 4); return BitConverter.ToUInt32(_b, (int)at); }
            public ulong U64(long at) { Check(at, 8); return BitConverter.ToUInt64(_b, (int)at); }
            public void WriteU16(long at, ushort value) { Check(at, 2); BitConverter.GetBytes(value).CopyTo(_b, at); }
        }
    }

#if !NEURALODE_NO_MSBUILD
    /// <summary>
    /// MSBuild task: applies <see cref="GlibcxxPatch"/> to each existing file in <see cref="Files"/> when the
    /// system's libstdc++ lacks GLIBCXX_3.4.32. Idempotent; fails the build with the reason when a file is not the
    /// one it expects.
    /// </summary>
    public class PatchLibTorchSharpForOldLibstdcxx : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        public override bool Execute()
        {
            var hasVersion = GlibcxxPatch.SystemLibstdcxxHasRequiredVersion();
            if (hasVersion != false)
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                    hasVersion == true ? "NeuralOde: system libstdc++ has GLIBCXX_3.4.32; libLibTorchSharp.so left as shipped."
                                       : "NeuralOde: no system libstdc++ found in the usual places; libLibTorchSharp.so left as shipped.");
                return true;
            }
            foreach (var item in Files)
            {
                var path = item.GetMetadata("FullPath");
                if (!File.Exists(path)) continue;
                try
                {
                    var outcome = GlibcxxPatch.PatchFile(path);
                    Log.LogMessage(outcome == GlibcxxPatchOutcome.Patched ? Microsoft.Build.Framework.MessageImportance.Normal : Microsoft.Build.Framework.MessageImportance.Low,
                        $"NeuralOde: {path}: {outcome} (GLIBCXX_3.4.32 fix for this system's older libstdc++).");
                }
                catch (Exception e) when (e is InvalidDataException || e is IOException || e is UnauthorizedAccessException)
                {
                    Log.LogError(e.Message);
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
