/// Writes an 8-bit indexed-colour PNG row by row and hands its bytes out as they are produced: the
/// signature and headers at once, an IDAT chunk whenever about a mebibyte of image data has built up,
/// the rest at `finish`. The bytes are those `PNGEncoder.encodeIndexed` gives for the same image.
public struct IndexedPNGWriter {
    private let width: Int
    private var rowsLeft: Int
    private var zlib: ZlibStoredWriter
    private var idat: [UInt8] = []
    private let emit: ([UInt8]) -> Void

    /// Starts an image; `emit` receives each piece of the file in order.
    public init(width: Int, height: Int, palette: [(UInt8, UInt8, UInt8)], emit: @escaping ([UInt8]) -> Void) {
        precondition(width > 0 && height > 0)
        precondition(!palette.isEmpty && palette.count <= 256)
        self.width = width
        self.rowsLeft = height
        self.emit = emit
        let rawLength = (width + 1) * height  // a filter byte and the indices, per row
        zlib = ZlibStoredWriter(totalLength: rawLength)

        var head = PNGEncoder.signature
        var header = [UInt8]()
        PNGEncoder.appendBigEndian(UInt32(width), to: &header)
        PNGEncoder.appendBigEndian(UInt32(height), to: &header)
        header.append(contentsOf: [8, 3, 0, 0, 0])  // depth 8, indexed colour, deflate, adaptive filters, no interlace
        PNGEncoder.appendChunk("IHDR", header, to: &head)
        var plte = [UInt8]()
        plte.reserveCapacity(palette.count * 3)
        for (r, g, b) in palette { plte.append(contentsOf: [r, g, b]) }
        PNGEncoder.appendChunk("PLTE", plte, to: &head)
        emit(head)

        idat.reserveCapacity(min(PNGEncoder.idatLimit, 2 + rawLength + (rawLength / 65535 + 1) * 5 + 4) + width + 6)
        zlib.writeHeader(to: &idat)
    }

    /// Adds the next row (`width` palette indices).
    public mutating func append(row: UnsafeBufferPointer<UInt8>) {
        precondition(row.count == width && rowsLeft > 0)
        zlib.write(byte: 0, to: &idat)  // filter type None
        zlib.write(row[...], to: &idat)
        rowsLeft -= 1
        if idat.count >= PNGEncoder.idatLimit {
            var chunk = [UInt8]()
            PNGEncoder.appendChunk("IDAT", idat, to: &chunk)
            emit(chunk)
            idat.removeAll(keepingCapacity: true)
        }
    }

    /// Ends the image: the last IDAT chunk, with the zlib trailer, and IEND.
    public mutating func finish() {
        precondition(rowsLeft == 0, "\(rowsLeft) rows were not written")
        zlib.writeTrailer(to: &idat)
        var tail = [UInt8]()
        PNGEncoder.appendChunk("IDAT", idat, to: &tail)
        PNGEncoder.appendChunk("IEND", [], to: &tail)
        emit(tail)
    }
}
