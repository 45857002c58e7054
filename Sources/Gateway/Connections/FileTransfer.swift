import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOPosix

/// Sends a byte range of a file as a response body with `sendfile(2)`: the kernel moves the bytes
/// from the page cache to the socket, and the gateway never reads them.
///
/// Hummingbird's body writer takes only `ByteBuffer`s, so the region is written through the HTTP/1
/// codec's own context, below the conversion from HTTP types, where NIO's response encoder accepts a
/// `FileRegion` (with `Content-Length` set it goes out as it is). It is called from inside the body
/// closure, after Hummingbird has written the head: the head's write was handed to the event loop
/// before this one, so it goes out first; `finish` afterwards writes the end of the message.
enum FileTransfer {
    private static let fileIO = NonBlockingFileIO(threadPool: .singleton)

    /// Writes `range` of the file at `path` to `channel`'s response; returns once the kernel has taken
    /// the last byte (or throws when the connection failed under it).
    static func send(path: String, range: Range<Int64>, on channel: any Channel) async throws {
        guard !range.isEmpty else { return }
        let handle = try await fileIO.openFile(_deprecatedPath: path, mode: .read, eventLoop: channel.eventLoop).get()
        defer { try? handle.close() }
        let region = FileRegion(fileHandle: handle, readerIndex: Int(range.lowerBound), endIndex: Int(range.upperBound))
        try await writeBody(.fileRegion(region), on: channel)
    }

    /// Writes and flushes a body part through the HTTP/1 codec's own context, below Hummingbird; returns
    /// once the kernel has it (writes complete in order, so everything written before it is there too).
    static func writeBody(_ part: IOData, on channel: any Channel) async throws {
        try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            do {
                let codec = try channel.pipeline.syncOperations.context(handlerType: HTTP1ToHTTPServerCodec.self)
                return codec.writeAndFlush(NIOAny(HTTPServerResponsePart.body(part)))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }
}
