import Foundation
import RelayProtocol
import Testing

@testable import MapRender

@Suite(.timeLimit(.minutes(5))) struct MapRenderTests {
    /// The same parameters give the same bytes on every machine: pinned to the digest the shipped
    /// fixture records (functions/map-render/fixtures/small-square.json), not only to a second run here.
    @Test func sameParametersGiveTheSameBytes() throws {
        let square = MapRenderer.renderPNG(try MapParameters(width: 256, height: 256, seed: 7))
        #expect(ContentDigest(of: square).hex == "3d3e833f7624919893ad45d2875c28291efb7dd6d1cd9377ef98d296bfb23002")
        #expect(square.count == 66606)
        let parameters = try MapParameters(width: 300, height: 200, seed: 42)
        #expect(MapRenderer.renderPNG(parameters) != MapRenderer.renderPNG(try MapParameters(width: 300, height: 200, seed: 43)))
    }

    @Test func theImageDecodesToItsPixels() throws {
        let parameters = try MapParameters(width: 1000, height: 900, seed: 1)
        let png = MapRenderer.renderPNG(parameters)
        let decoded = try IndependentPNGDecoder.decode(png)
        #expect(decoded.width == 1000 && decoded.height == 900)
        #expect(decoded.bitDepth == 8 && decoded.colourType == 3)
        #expect(decoded.paletteEntries == MapRenderer.palette.count)
        #expect(decoded.indices == MapRenderer.renderIndices(parameters))
        // A map, not a flat fill: water, land and lines all appear.
        let used = Set(decoded.indices)
        #expect(used.count > 40)
        #expect(used.contains(MapRenderer.coastIndex) && used.contains(MapRenderer.contourIndex))
    }

    /// Bigger than Lambda's 6 MB buffered response (6 MiB + 100 bytes), which is why it goes in chunks;
    /// the size the defaults fixture records.
    @Test func aDefaultMapIsLargerThanAServerlessResponse() throws {
        let png = MapRenderer.renderPNG(try MapParameters())
        #expect(png.count == 16_783_593)
        #expect(png.count > 6 * 1024 * 1024 + 100)
    }

    @Test func parametersAreChecked() throws {
        #expect(throws: MapParameterError.self) { try MapParameters(width: 0, height: 10) }
        #expect(throws: MapParameterError.self) { try MapParameters(width: 10, height: 40000) }
        #expect(throws: MapParameterError.self) { try MapParameters(json: ["width": 10.5]) }
        #expect(throws: MapParameterError.self) { try MapParameters(json: ["seed": Double?.none]) }
        let defaults = try MapParameters(json: [:])
        #expect(defaults == (try MapParameters(width: 4096, height: 4096, seed: 1)))
    }

    @Test func encodesTinyImagesAcrossBlockBoundaries() throws {
        // 65535-byte stored blocks: sizes around the boundary must still decode.
        for (width, height) in [(1, 1), (65534, 1), (65535, 1), (300, 219), (256, 256)] {
            let pixels = (0..<(width * height)).map { UInt8(truncatingIfNeeded: $0 % 3) }
            let png = PNGEncoder.encodeIndexed(width: width, height: height, palette: [(0, 0, 0), (255, 0, 0), (0, 255, 0)], pixels: pixels)
            let decoded = try IndependentPNGDecoder.decode(png)
            #expect(decoded.indices == pixels, "\(width)x\(height)")
        }
    }
}

/// A deliberately separate decoder (bitwise CRC, plain Adler loop) so the encoder is not checked against itself.
enum IndependentPNGDecoder {
    struct Image {
        var width = 0, height = 0, bitDepth = 0, colourType = 0, paletteEntries = 0
        var indices: [UInt8] = []
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    static func decode(_ png: [UInt8]) throws -> Image {
        guard png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw Failure(description: "signature") }
        var image = Image()
        var zlib: [UInt8] = []
        var offset = 8
        var sawEnd = false
        while offset < png.count {
            let length = Int(be32(png, offset))
            let type = String(decoding: png[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let data = Array(png[(offset + 8)..<(offset + 8 + length)])
            let crc = be32(png, offset + 8 + length)
            guard crc == bitwiseCRC(Array(png[(offset + 4)..<(offset + 8 + length)])) else { throw Failure(description: "CRC of \(type)") }
            switch type {
            case "IHDR":
                image.width = Int(be32(data, 0))
                image.height = Int(be32(data, 4))
                image.bitDepth = Int(data[8])
                image.colourType = Int(data[9])
            case "PLTE": image.paletteEntries = data.count / 3
            case "IDAT": zlib += data
            case "IEND": sawEnd = true
            default: break
            }
            offset += 12 + length
        }
        guard sawEnd else { throw Failure(description: "no IEND") }
        guard zlib.count >= 6, (UInt16(zlib[0]) << 8 | UInt16(zlib[1])) % 31 == 0 else { throw Failure(description: "zlib header") }
        var raw: [UInt8] = []
        var position = 2
        while true {
            let header = zlib[position]
            guard header & 0b110 == 0 else { throw Failure(description: "not a stored block") }
            let length = Int(zlib[position + 1]) | Int(zlib[position + 2]) << 8
            let complement = Int(zlib[position + 3]) | Int(zlib[position + 4]) << 8
            guard length ^ 0xFFFF == complement else { throw Failure(description: "LEN/NLEN") }
            raw += zlib[(position + 5)..<(position + 5 + length)]
            position += 5 + length
            if header & 1 == 1 { break }
        }
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        guard be32(zlib, position) == (b << 16 | a) else { throw Failure(description: "Adler-32") }
        for row in 0..<image.height {
            let start = row * (image.width + 1)
            guard raw[start] == 0 else { throw Failure(description: "filter type") }
            image.indices += raw[(start + 1)...(start + image.width)]
        }
        return image
    }

    static func be32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    static func bitwiseCRC(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~crc
    }
}
