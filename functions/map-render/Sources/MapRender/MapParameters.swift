/// The `map-render` parameters: `{"width", "height", "seed"}`, defaults 4096, 4096, 1.
public struct MapParameters: Sendable, Hashable {
    /// Image width in pixels.
    public var width: Int
    /// Image height in pixels.
    public var height: Int
    /// Terrain seed; the same seed gives the same map.
    public var seed: Int64

    /// Largest side accepted, so one invocation cannot ask for more memory than a function may have.
    public static let maximumSide = 32768

    /// Makes parameters, checking the bounds.
    public init(width: Int = 4096, height: Int = 4096, seed: Int64 = 1) throws(MapParameterError) {
        guard (1...Self.maximumSide).contains(width) else { throw MapParameterError("width must be 1...\(Self.maximumSide), got \(width)") }
        guard (1...Self.maximumSide).contains(height) else { throw MapParameterError("height must be 1...\(Self.maximumSide), got \(height)") }
        self.width = width
        self.height = height
        self.seed = seed
    }

    /// Reads parameters from a JSON object of integers; absent keys take their defaults.
    public init(json: [String: Double?]) throws(MapParameterError) {
        func integer(_ key: String, default value: Int64) throws(MapParameterError) -> Int64 {
            guard let entry = json[key] else { return value }
            guard let number = entry, number.rounded() == number, abs(number) <= 9.0e15 else {
                throw MapParameterError("\(key) must be an integer")
            }
            return Int64(number)
        }
        try self.init(
            width: Int(try integer("width", default: 4096)),
            height: Int(try integer("height", default: 4096)),
            seed: try integer("seed", default: 1)
        )
    }
}

/// A parameter out of range or of the wrong type.
public struct MapParameterError: Error, CustomStringConvertible, Sendable {
    /// What was wrong.
    public var description: String

    init(_ description: String) { self.description = description }
}
