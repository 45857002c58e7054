#if canImport(Glibc)
import Glibc
#endif

/// A client that misbehaves at the socket level, as real clients do: sends a request and then resets
/// the connection (`SO_LINGER` 0), before the response head or partway through the body.
///
/// Plain blocking sockets with a receive timeout: each call is short, and the tests want the exact
/// moment of the reset under their control.
public struct RawClient: Sendable {
    private let descriptor: Int32

    /// Connects to `127.0.0.1:port`.
    ///
    /// The receive buffer is kept small (`receiveBuffer`, set before connecting so the window follows it):
    /// a client's kernel acknowledges what fits its buffer whether or not the program reads it, and a
    /// test of "stopped reading partway" must not have the whole response acknowledged on its behalf.
    public init(port: Int, receiveBuffer: Int32 = 64 << 10) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TimedOut(description: "socket() failed: \(errno)") }
        var size = receiveBuffer
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TimedOut(description: "connect to port \(port) failed: \(errno)")
        }
    }

    /// Sends a `GET` of `path` (HTTP/1.1, keep-alive).
    public func sendGET(_ path: String, headers: [String: String] = [:]) {
        var text = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until at least `count` bytes arrived (or the peer closed, or 10 s passed); returns them.
    @discardableResult
    public func read(atLeast count: Int) -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while received.count < count {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return received
    }

    /// Resets the connection: `SO_LINGER` with a zero timeout, then close, so the peer sees RST.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(descriptor)
    }
}
