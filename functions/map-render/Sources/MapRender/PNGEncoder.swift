import RelayProtocol

/// A PNG encoder for 8-bit indexed-colour images that gives the same bytes on every machine.
///
/// The image data is framed as stored (uncompressed) deflate blocks. A zlib build's compressed
/// output differs between versions and platforms (Apple's libz, zlib-ng), and fixture digests must
/// not; a stored stream is valid zlib that every decoder accepts, and it keeps a 4096² map above
/// the 10 MB a serverless response cannot carry, which is the point of the emulator.
public enum PNGEncoder {
    /// The eight bytes every PNG starts with.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Largest IDAT chunk written; decoders accept any size, smaller ones keep peak memory low.
    static let idatLimit = 1 << 20

    /// Encodes `pixels` (one palette index per pixel, row by row) with `palette` (RGB triples, at most 256).
    public static func encodeIndexed(width: Int, height: Int, palette: [(UInt8, UInt8, UInt8)], pixels: [UInt8]) -> [UInt8] {
        precondition(width > 0 && height > 0 && pixels.count == width * height)
        var out = [UInt8]()
        out.reserveCapacity(pixels.count + height + pixels.count / 65535 * 5 + 1024)
        var writer = IndexedPNGWriter(width: width, height: height, palette: palette) { out.append(contentsOf: $0) }
        pixels.withUnsafeBufferPointer { source in
            for row in 0..<height {
                writer.append(row: UnsafeBufferPointer(rebasing: source[(row * width)..<((row + 1) * width)]))
            }
        }
        writer.finish()
        return out
    }

    static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &out)
        let typeBytes = Array(type.utf8)
        out.append(contentsOf: typeBytes)
        out.append(contentsOf: data)
        var crc = CRC32()
        crc.update(typeBytes)
        crc.update(data)
        appendBigEndian(crc.value, to: &out)
    }

    static func appendBigEndian(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value >> 24))
        out.append(UInt8(truncatingIfNeeded: value >> 16))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value))
    }
}

/// Writes a zlib stream made of stored deflate blocks, one block per 65,535 bytes, with its Adler-32.
struct ZlibStoredWriter {
    private var remaining: Int
    private var leftInBlock = 0
    private var adler = Adler32()

    init(totalLength: Int) {
        self.remaining = totalLength
    }

    func writeHeader(to out: inout [UInt8]) {
        out.append(contentsOf: [0x78, 0x01])  // deflate, 32 KiB window, no preset dictionary, check bits
    }

    mutating func write(byte: UInt8, to out: inout [UInt8]) {
        startBlockIfNeeded(&out)
        out.append(byte)
        adler.update(byte)
        leftInBlock -= 1
        remaining -= 1
    }

    mutating func write(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, to out: inout [UInt8]) {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            startBlockIfNeeded(&out)
            let take = min(leftInBlock, bytes.endIndex - start)
            let part = UnsafeBufferPointer(rebasing: bytes[start..<(start + take)])
            out.append(contentsOf: part)
            adler.update(part)
            leftInBlock -= take
            remaining -= take
            start += take
        }
    }

    func writeTrailer(to out: inout [UInt8]) {
        precondition(remaining == 0 && leftInBlock == 0, "wrote a different length than announced")
        PNGEncoder.appendBigEndian(adler.value, to: &out)
    }

    private mutating func startBlockIfNeeded(_ out: inout [UInt8]) {
        guard leftInBlock == 0 else { return }
        let length = min(65535, remaining)
        let isFinal: UInt8 = remaining <= 65535 ? 1 : 0
        out.append(isFinal)  // BFINAL, BTYPE=00 (stored)
        out.append(UInt8(length & 0xFF))
        out.append(UInt8(length >> 8))
        out.append(UInt8(~length & 0xFF))
        out.append(UInt8((~length >> 8) & 0xFF))
        leftInBlock = length
    }
}

/// Adler-32, the zlib stream checksum.
struct Adler32 {
    private var a: UInt32 = 1
    private var b: UInt32 = 0

    mutating func update(_ byte: UInt8) {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }

    mutating func update(_ bytes: UnsafeBufferPointer<UInt8>) {
        // Sums stay below 2^32 for 5552 bytes between reductions (zlib's NMAX).
        var index = 0
        while index < bytes.count {
            let end = min(index + 5552, bytes.count)
            while index < end {
                a &+= UInt32(bytes[index])
                b &+= a
                index += 1
            }
            a %= 65521
            b %= 65521
        }
    }

    var value: UInt32 { b << 16 | a }
}
