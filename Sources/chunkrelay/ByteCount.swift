import ArgumentParser
import RelayProtocol

/// A size on the command line: bytes, or a number with `KiB`, `MiB` or `GiB` (`K`, `M`, `G` alike).
struct ByteCount: ExpressibleByArgument, Sendable {
    /// The size in bytes.
    let bytes: Int64

    init(bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        guard let bytes = ByteSize.parse(argument) else { return nil }
        self.bytes = bytes
    }

    var defaultValueDescription: String { "\(bytes >> 20)MiB" }
}
