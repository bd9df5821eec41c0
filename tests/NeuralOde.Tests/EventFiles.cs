using Tensorboard;

namespace NeuralOde.Tests;

/// <summary>Reads TensorBoard event files back, independently of the writer: the TFRecord framing (a uint64 length,
/// the masked CRC32C of its 8 bytes, the data, the masked CRC32C of the data; every CRC checked) and the
/// <see cref="Event"/> protobufs in it (the classes TorchSharp ships).</summary>
static class EventFiles
{
    static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        var c = (uint)n;
        for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>CRC32C (Castagnoli).</summary>
    public static uint Crc32C(ReadOnlySpan<byte> bytes)
    {
        var c = 0xFFFFFFFFu;
        foreach (var b in bytes) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    static uint Masked(uint crc) => ((crc >> 15) | (crc << 17)) + 0xa282ead8u;

    /// <summary>The events of a file, each record's CRCs checked (InvalidDataException otherwise).</summary>
    public static List<Event> Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var events = new List<Event>();
        var position = 0;
        while (position < bytes.Length)
        {
            if (bytes.Length - position < 16) throw new InvalidDataException($"{path}: truncated at byte {position}");
            var length = BitConverter.ToUInt64(bytes, position);
            if (Masked(Crc32C(bytes.AsSpan(position, 8))) != BitConverter.ToUInt32(bytes, position + 8))
                throw new InvalidDataException($"{path}: the length's CRC is wrong at byte {position}");
            if (length > (ulong)(bytes.Length - position - 16)) throw new InvalidDataException($"{path}: truncated record at byte {position}");
            var data = bytes.AsSpan(position + 12, (int)length);
            if (Masked(Crc32C(data)) != BitConverter.ToUInt32(bytes, position + 12 + (int)length))
                throw new InvalidDataException($"{path}: the data's CRC is wrong at byte {position}");
            // TorchSharp's generated classes parse from arrays and streams, not spans.
            events.Add(Event.Parser.ParseFrom(data.ToArray()));
            position += 16 + (int)length;
        }
        return events;
    }

    /// <summary>The scalars of a file in order: tag, step, value.</summary>
    public static List<(string Tag, long Step, float Value)> Scalars(string path) =>
        Read(path).Where(e => e.Summary is not null)
                  .SelectMany(e => e.Summary.Value.Where(v => v.ValueCase == Summary.Types.Value.ValueOneofCase.SimpleValue)
                                                  .Select(v => (v.Tag, e.Step, v.SimpleValue)))
                  .ToList();
}
