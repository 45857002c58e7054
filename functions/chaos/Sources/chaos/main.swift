import FunctionKit
import Foundation
import Logging
import NIOCore
import RelayProtocol

// The chaos function: misbehaves on request, so tests can see the runtime and gateway cope.
//
// Event: {"mode": "echo" | "env" | "sleep" | "error" | "crash" | "oversize" | "allocate" | "upload" | "stream", "seconds": 1.5,
//          "bytes": 100, "crashAtChunk": 2, "succeedFromAttempt": 2, "chunks": 4, "failAfterChunks": 2, ...}.
// `stream` answers in Lambda's streaming response mode: `chunks` pieces of `bytes` each, `seconds` apart, and with
// `failAfterChunks` an error after that many (reported in the stream's trailers); with `gate` (a path) it waits
// after the first chunk until that file exists. `env` answers with its whole environment. With CHAOS_INIT_ERROR=1 in its environment it fails in init.
// An event from the gateway (an InvocationEvent) carries the mode in its params.

struct ChaosEvent: Decodable {
    var mode: String?
    /// `upload` fails (as a function error) while the gateway's attempt number is below this.
    var succeedFromAttempt: Int?
    var seconds: Double?
    var bytes: Int?
    var crashAtChunk: Int?
    var chunks: Int?
    var failAfterChunks: Int?
    /// `stream`: after the first chunk, wait (up to 20 s) until this file exists. A test creates it when
    /// the first chunk reaches it, which proves the chunk was delivered while the function still ran.
    var gate: String?
}

let logger = Logger(label: "chaos")

if ProcessInfo.processInfo.environment["CHAOS_INIT_ERROR"] == "1" {
    let endpoint = ProcessInfo.processInfo.environment["AWS_LAMBDA_RUNTIME_API"] ?? ""
    try await RuntimeAPIClient(endpoint: endpoint, logger: logger)
        .reportInitError(FunctionError(errorType: "Chaos.InitError", errorMessage: "failing in init as configured"))
    exit(1)
}

/// Byte `i` is `i × 31 + seed` (mod 256): a period of 256 bytes, copied out block by block so that a
/// benchmark's 256 MiB image costs the function milliseconds, not most of the upload's time.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    let period = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        period.withUnsafeBufferPointer { block in
            var offset = 0
            while offset < count {
                let length = min(block.count, count - offset)
                UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[offset..<offset + length])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(block)[0..<length]))
                offset += length
            }
        }
        initialized = count
    }
}

/// Waits (up to 20 s) until `path` exists: a test creates it once the first chunk has reached it, so a
/// stream that gets past this was delivered while the function still ran.
func waitForGate(_ path: String) async throws {
    let deadline = ContinuousClock.now + .seconds(20)
    while !FileManager.default.fileExists(atPath: path) {
        guard ContinuousClock.now < deadline else {
            throw FunctionError(errorType: "Chaos.GateTimeout", errorMessage: "nobody received the first chunk within 20 s")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Writes `count` pieces of `size` bytes (seeded by their index), `pause` seconds apart; fails with
/// `Chaos.StreamError` before piece `failAfter`, and waits at `gate` after the first piece.
func writeChunks(
    _ writer: ResponseStreamWriter, count: Int, size: Int, failAfter: Int?, gate: String?, pause: Double = 0
) async throws {
    for index in 0..<count {
        if let failAfter, index == failAfter {
            throw FunctionError(errorType: "Chaos.StreamError", errorMessage: "failing after \(index) chunks as asked")
        }
        try await writer.write(ByteBuffer(bytes: pattern(size, seed: UInt8(truncatingIfNeeded: index))))
        if index == 0, let gate { try await waitForGate(gate) }
        if pause > 0 { try await Task.sleep(for: .milliseconds(Int(pause * 1000))) }
    }
}

/// A Function URL request: `?mode=echo` (default) answers with the event it got, `http-stream` streams
/// `chunks` × `bytes` after a prelude (`status`, an `x-chaos` header, a cookie), waiting at `gate` after
/// the first chunk and failing after `failAfterChunks`; `raw-stream` streams without a prelude; `error`
/// fails; `oversize` answers 7 MiB; `sleep` waits `seconds`.
func answerURL(_ request: FunctionURLRequest, event: Data) async throws -> FunctionResponse {
    let query = request.queryStringParameters ?? [:]
    let count = query["chunks"].flatMap(Int.init) ?? 4
    let size = query["bytes"].flatMap(Int.init) ?? 1000
    let gate = query["gate"]
    let failAfter = query["failAfterChunks"].flatMap(Int.init)
    @Sendable func chunks(_ writer: ResponseStreamWriter) async throws {
        try await writeChunks(writer, count: count, size: size, failAfter: failAfter, gate: gate)
    }
    switch query["mode"] ?? "echo" {
    case "http-stream":
        let status = query["status"].flatMap(Int.init) ?? 200
        return .httpStream { writer in
            try await writer.writeStatusAndHeaders(
                HTTPStatusAndHeaders(statusCode: status, headers: ["content-type": "application/octet-stream", "x-chaos": "streamed"], cookies: ["chaos=1; Path=/"])
            )
            try await chunks(writer)
        }
    case "raw-stream":
        return .streamed(contentType: "application/x-chaos") { writer in try await chunks(writer) }
    case "error":
        throw FunctionError(errorType: "Chaos.Error", errorMessage: "failing as asked")
    case "oversize":
        return .buffered(ByteBuffer(bytes: pattern(7 << 20, seed: 1)))
    case "sleep":
        try await Task.sleep(for: .milliseconds(Int((query["seconds"].flatMap(Double.init) ?? 1) * 1000)))
        return .buffered(ByteBuffer(string: #"{"statusCode":200,"body":"slept"}"#))
    default:
        let response: [String: Any] = [
            "statusCode": 200, "headers": ["content-type": "application/json", "x-chaos": "echo"], "cookies": ["chaos=1"],
            "body": String(decoding: event, as: UTF8.self),
        ]
        return .buffered(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: response)))
    }
}

try await FunctionRuntime(logger: logger, responding: { event, context -> FunctionResponse in
    let data = Data(event.readableBytesView)
    var chaos = (try? JSONDecoder().decode(ChaosEvent.self, from: data)) ?? ChaosEvent()
    let invocation = try? JSONDecoder().decode(InvocationEvent.self, from: data)
    if let invocation {
        let params = try JSONEncoder().encode(invocation.params)
        chaos = (try? JSONDecoder().decode(ChaosEvent.self, from: params)) ?? ChaosEvent()
    }
    // Through a Function URL the event is an HTTP request; the query says what to do.
    if let request = try? JSONDecoder().decode(FunctionURLRequest.self, from: data) {
        return try await answerURL(request, event: data)
    }
    switch chaos.mode ?? "echo" {
    case "stream":
        let count = chaos.chunks ?? 4
        let size = chaos.bytes ?? (64 << 10)
        let pause = chaos.seconds ?? 0
        let failAfter = chaos.failAfterChunks
        let gate = chaos.gate
        return .streamed(contentType: "application/octet-stream") { writer in
            try await writeChunks(writer, count: count, size: size, failAfter: failAfter, gate: gate, pause: pause)
        }
    case "env":
        return .buffered(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ProcessInfo.processInfo.environment, options: [.sortedKeys])))
    case "sleep":
        try await Task.sleep(for: .milliseconds(Int((chaos.seconds ?? 1) * 1000)))
        return .buffered(ByteBuffer(string: #"{"slept":\#(chaos.seconds ?? 1)}"#))
    case "error":
        throw FunctionError(errorType: "Chaos.Error", errorMessage: "failing as asked")
    case "crash":
        logger.error("crashing as asked")
        exit(3)
    case "allocate":
        // Touch every page, so the memory is resident and counts against the function's memory size.
        let megabytes = chaos.bytes ?? 512
        var hold = [UInt8](repeating: 1, count: megabytes << 20)
        for page in stride(from: 0, to: hold.count, by: 4096) { hold[page] = UInt8(truncatingIfNeeded: page) }
        context.logger.info("holding \(megabytes) MB")
        try await Task.sleep(for: .seconds(chaos.seconds ?? 2))
        return .buffered(ByteBuffer(string: #"{"held":\#(hold.count >> 20)}"#))
    case "oversize":
        return .buffered(ByteBuffer(bytes: pattern(chaos.bytes ?? (7 << 20), seed: 1)))
    case "upload":
        // Uploads a patterned image for a gateway job; optionally dies after some chunks.
        guard let invocation else { throw FunctionError(errorType: "Chaos.Error", errorMessage: "upload needs a gateway event") }
        if let first = chaos.succeedFromAttempt, invocation.attempt < first {
            // Upload part of the image first, so a retry has something to roll back.
            // Loudly: a partial upload that failed would leave nothing to roll back, and the test would not know.
            _ = try await ChunkUploader().uploadChunks(Array(pattern(invocation.chunkSize, seed: 99)), for: invocation)
            throw FunctionError(errorType: "Chaos.Flaky", errorMessage: "failing attempt \(invocation.attempt) as asked")
        }
        let image = pattern(chaos.bytes ?? 100_000, seed: 7)
        if let crashAt = chaos.crashAtChunk {
            // Upload only the first chunks, never complete, and die.
            let cut = min(image.count, crashAt * invocation.chunkSize)
            _ = try await ChunkUploader().uploadChunks(Array(image[0..<cut]), for: invocation)
            exit(4)
        }
        let manifest = try await ChunkUploader().upload(image, contentType: "application/octet-stream", for: invocation)
        return .buffered(ByteBuffer(bytes: try JSONEncoder().encode(manifest)))
    default:
        let pid = ProcessInfo.processInfo.processIdentifier
        let response: [String: String] = [
            "pid": String(pid), "requestId": context.requestID, "arn": context.invokedFunctionARN,
            "event": String(decoding: data, as: UTF8.self),
            "function": ProcessInfo.processInfo.environment["AWS_LAMBDA_FUNCTION_NAME"] ?? "",
            "memory": ProcessInfo.processInfo.environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] ?? "",
        ]
        return .buffered(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: response, options: [.sortedKeys])))
    }
}).run()
