/// Renders a procedural terrain map (seeded value-noise elevation, coloured by height, hill-shaded,
/// with contour lines, a coastline and a grid) as a PNG.
///
/// Everything is integer arithmetic: floating-point results can differ between platforms' math
/// libraries and fused multiply-adds, and fixture digests need identical bytes everywhere.
public enum MapRenderer {
    /// The image's media type.
    public static let contentType = "image/png"

    /// Renders the map and encodes it.
    public static func renderPNG(_ parameters: MapParameters) -> [UInt8] {
        var out = [UInt8]()
        renderPNG(parameters) { out.append(contentsOf: $0) }
        return out
    }

    /// Renders the map row by row and encodes each row as it is made, handing the PNG's bytes to `emit`
    /// as they come (a stream can send the first of them before the last row exists).
    public static func renderPNG(_ parameters: MapParameters, emit: @escaping ([UInt8]) -> Void) {
        var writer = IndexedPNGWriter(width: parameters.width, height: parameters.height, palette: palette, emit: emit)
        renderRows(parameters) { writer.append(row: $0) }
        writer.finish()
    }

    static let bands = 80
    static let seaBand = 32
    static let contourIndex: UInt8 = 240
    static let coastIndex: UInt8 = 241
    static let gridIndex: UInt8 = 242
    static let gridSpacing = 512
    /// Elevation is sampled every `coarseStep` pixels and interpolated between, which keeps a
    /// 4096² render to about a million noise samples.
    static let coarseShift = 2

    /// One palette index per pixel.
    static func renderIndices(_ parameters: MapParameters) -> [UInt8] {
        var pixels = [UInt8]()
        pixels.reserveCapacity(parameters.width * parameters.height)
        renderRows(parameters) { pixels.append(contentsOf: $0) }
        return pixels
    }

    /// The palette indices of each row, top to bottom, handed to `row` as soon as the row is done.
    static func renderRows(_ parameters: MapParameters, row: (UnsafeBufferPointer<UInt8>) -> Void) {
        let width = parameters.width
        let height = parameters.height
        let seed = UInt64(bitPattern: parameters.seed)
        let coarse = CoarseElevation(width: width, height: height, shift: coarseShift, seed: seed)
        var line = [UInt8](repeating: 0, count: width)
        var previous = [Int32](repeating: 0, count: width)
        var current = [Int32](repeating: 0, count: width)
        line.withUnsafeMutableBufferPointer { out in
            for y in 0..<height {
                coarse.fillRow(y, into: &current)
                for x in 0..<width {
                    let elevation = current[x]
                    let band = (Int(elevation) * bands) >> 16
                    let left = x > 0 ? current[x - 1] : elevation
                    let up = y > 0 ? previous[x] : elevation
                    let upLeft = x > 0 && y > 0 ? previous[x - 1] : elevation
                    var index: UInt8
                    if x % gridSpacing == 0 || y % gridSpacing == 0 {
                        index = gridIndex
                    } else {
                        let leftBand = (Int(left) * bands) >> 16
                        let upBand = (Int(up) * bands) >> 16
                        let isLand = band >= seaBand
                        if isLand != (leftBand >= seaBand) || isLand != (upBand >= seaBand) {
                            index = coastIndex
                        } else if isLand && (band >> 2 != leftBand >> 2 || band >> 2 != upBand >> 2) {
                            index = contourIndex
                        } else {
                            // Light from the north-west: a slope facing it is lit, one facing away is shaded.
                            let slope = elevation - upLeft
                            let shade = !isLand ? 1 : (slope > 24 ? 2 : (slope < -24 ? 0 : 1))
                            index = UInt8(band * 3 + shade)
                        }
                    }
                    out[x] = index
                }
                row(UnsafeBufferPointer(out))
                swap(&previous, &current)
            }
        }
    }

    /// 240 hill-shaded elevation colours (80 bands × shadow, flat, lit), then contour, coast and grid.
    static let palette: [(UInt8, UInt8, UInt8)] = {
        // Key colours at band positions; bands between them are interpolated.
        let keys: [(band: Int, rgb: (Int, Int, Int))] = [
            (0, (8, 30, 92)), (31, (72, 140, 200)), (32, (222, 208, 152)), (34, (214, 200, 140)),
            (35, (86, 156, 72)), (50, (150, 182, 92)), (51, (164, 146, 96)), (65, (118, 94, 70)),
            (66, (128, 118, 112)), (74, (176, 170, 166)), (75, (232, 234, 240)), (79, (255, 255, 255)),
        ]
        var colours: [(UInt8, UInt8, UInt8)] = []
        for band in 0..<bands {
            let upper = keys.firstIndex { $0.band >= band } ?? keys.count - 1
            let lower = max(0, keys[upper].band == band ? upper : upper - 1)
            let (b0, c0) = keys[lower]
            let (b1, c1) = keys[upper]
            let span = max(1, b1 - b0)
            let t = band - b0
            let base = (
                c0.0 + (c1.0 - c0.0) * t / span, c0.1 + (c1.1 - c0.1) * t / span, c0.2 + (c1.2 - c0.2) * t / span
            )
            for shade in 0..<3 {
                let scale = [80, 100, 112][shade]
                func channel(_ value: Int) -> UInt8 { UInt8(min(255, value * scale / 100)) }
                colours.append((channel(base.0), channel(base.1), channel(base.2)))
            }
        }
        colours.append((92, 62, 40))  // contour
        colours.append((20, 20, 28))  // coast
        colours.append((200, 210, 230))  // grid
        return colours
    }()
}

/// Fractal value noise sampled on a coarse grid; rows are interpolated from it on demand.
struct CoarseElevation {
    let width: Int
    let shift: Int
    let columns: Int
    let samples: [Int32]

    init(width: Int, height: Int, shift: Int, seed: UInt64) {
        self.width = width
        self.shift = shift
        let columns = (width >> shift) + 2
        let rows = (height >> shift) + 2
        self.columns = columns
        var samples = [Int32](repeating: 0, count: columns * rows)
        samples.withUnsafeMutableBufferPointer { out in
            for row in 0..<rows {
                for column in 0..<columns {
                    out[row * columns + column] = Int32(Self.fractalNoise(x: column << shift, y: row << shift, seed: seed))
                }
            }
        }
        self.samples = samples
    }

    /// Bilinear interpolation of the coarse samples for one image row, in 0..<65536.
    func fillRow(_ y: Int, into row: inout [Int32]) {
        let step = 1 << shift
        let gy = y >> shift
        let fy = Int32(y & (step - 1))
        samples.withUnsafeBufferPointer { s in
            for x in 0..<width {
                let gx = x >> shift
                let fx = Int32(x & (step - 1))
                let top = s[gy * columns + gx] * (Int32(step) - fx) + s[gy * columns + gx + 1] * fx
                let bottom = s[(gy + 1) * columns + gx] * (Int32(step) - fx) + s[(gy + 1) * columns + gx + 1] * fx
                row[x] = (top * (Int32(step) - fy) + bottom * fy) >> Int32(2 * shift)
            }
        }
    }

    /// Eight octaves of value noise (lattice 1024 down to 8 pixels), contrast-stretched to 0..<65536.
    static func fractalNoise(x: Int, y: Int, seed: UInt64) -> Int {
        var sum = 0
        var amplitude = 256
        var total = 0
        for octave in 0..<8 {
            let latticeShift = 10 - octave
            sum += valueNoise(x: x, y: y, latticeShift: latticeShift, seed: seed &+ UInt64(octave) &* 0x632B_E59B_D9B4_E019) * amplitude
            total += amplitude
            amplitude >>= 1
        }
        let mean = sum / total  // 0..<65536, clustered around the middle
        let stretched = (mean - 32768) * 2 + 32768
        return min(65535, max(0, stretched))
    }

    /// Smoothly interpolated hash values on a lattice of 2^latticeShift pixels, 0..<65536.
    static func valueNoise(x: Int, y: Int, latticeShift: Int, seed: UInt64) -> Int {
        let ix = x >> latticeShift
        let iy = y >> latticeShift
        let mask = (1 << latticeShift) - 1
        let tx = smooth((x & mask) << (16 - latticeShift))
        let ty = smooth((y & mask) << (16 - latticeShift))
        let v00 = hash(ix, iy, seed)
        let v10 = hash(ix + 1, iy, seed)
        let v01 = hash(ix, iy + 1, seed)
        let v11 = hash(ix + 1, iy + 1, seed)
        let top = v00 + (((v10 - v00) * tx) >> 16)
        let bottom = v01 + (((v11 - v01) * tx) >> 16)
        return top + (((bottom - top) * ty) >> 16)
    }

    /// Smoothstep on a 16-bit fraction: 3t² − 2t³. (In Swift `>>` binds tighter than `*`: keep the parentheses.)
    static func smooth(_ t: Int) -> Int {
        (((t * t) >> 16) * (3 * 65536 - 2 * t)) >> 16
    }

    /// A 16-bit lattice value (SplitMix64 finaliser over the coordinates and seed).
    static func hash(_ x: Int, _ y: Int, _ seed: UInt64) -> Int {
        var h = seed &+ UInt64(bitPattern: Int64(x)) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(bitPattern: Int64(y)) &* 0xC2B2_AE3D_27D4_EB4F
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        h ^= h >> 31
        return Int(h & 0xFFFF)
    }
}
