#if canImport(Glibc)
import Glibc
#endif

/// A client that misbehaves at the socket level, as real clients do: sends a request and then resets
/// the connection (`SO_LINGER` 0), before the response head or partway through the body.
///
/// A plain socket, non-blocking once connected: waiting for bytes sleeps the task rather than holding
/// a thread of the concurrency pool (on two cores, a test blocked in `recv` starves the server it tests).
public struct RawClient: Sendable {
    private let descriptor: Int32

    /// Connects to `127.0.0.1:port`.
    ///
    /// The receive buffer is kept small (`receiveBuffer`, set before connecting so the window follows it):
    /// a client's kernel acknowledges what fits its buffer whether or not the program reads it, and a
    /// test of "stopped reading partway" must not have the whole response acknowledged on its behalf.
    public init(port: Int, receiveBuffer: Int32 = 64 << 10) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed: \(errno)") }
        var size = receiveBuffer
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestFailure("connect to port \(port) failed: \(errno)")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    /// Sends a `GET` of `path` (HTTP/1.1, keep-alive).
    public func sendGET(_ path: String, headers: [String: String] = [:]) {
        var text = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until at least `count` bytes arrived (or the peer closed, or `timeout` passed); returns them.
    @discardableResult
    public func read(atLeast count: Int, timeout: Duration = .seconds(10)) async -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + timeout
        while received.count < count, ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received += buffer[0..<n]
            } else if n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                try? await Task.sleep(for: .milliseconds(1))
            } else {
                break
            }
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
