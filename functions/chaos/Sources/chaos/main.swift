import FunctionKit
import Foundation
import Logging
import NIOCore
import RelayProtocol

// The chaos function: misbehaves on request, so tests can see the runtime and gateway cope.
//
// Event: {"mode": "echo" | "sleep" | "error" | "crash" | "oversize" | "allocate" | "upload", "seconds": 1.5, "bytes": 100,
//          "crashAtChunk": 2, "succeedFromAttempt": 2, ...}. With CHAOS_INIT_ERROR=1 in its environment it fails in init.
// An event from the gateway (an InvocationEvent) carries the mode in its params.

struct ChaosEvent: Decodable {
    var mode: String?
    /// `upload` fails (as a function error) while the gateway's attempt number is below this.
    var succeedFromAttempt: Int?
    var seconds: Double?
    var bytes: Int?
    var crashAtChunk: Int?
}

let logger = Logger(label: "chaos")

if ProcessInfo.processInfo.environment["CHAOS_INIT_ERROR"] == "1" {
    let endpoint = ProcessInfo.processInfo.environment["AWS_LAMBDA_RUNTIME_API"] ?? ""
    try await RuntimeAPIClient(endpoint: endpoint, logger: logger)
        .reportInitError(FunctionError(errorType: "Chaos.InitError", errorMessage: "failing in init as configured"))
    exit(1)
}

func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

try await FunctionRuntime(logger: logger) { event, context in
    let data = Data(event.readableBytesView)
    var chaos = (try? JSONDecoder().decode(ChaosEvent.self, from: data)) ?? ChaosEvent()
    let invocation = try? JSONDecoder().decode(InvocationEvent.self, from: data)
    if let invocation {
        let params = try JSONEncoder().encode(invocation.params)
        chaos = (try? JSONDecoder().decode(ChaosEvent.self, from: params)) ?? ChaosEvent()
    }
    switch chaos.mode ?? "echo" {
    case "sleep":
        try await Task.sleep(for: .milliseconds(Int((chaos.seconds ?? 1) * 1000)))
        return ByteBuffer(string: #"{"slept":\#(chaos.seconds ?? 1)}"#)
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
        return ByteBuffer(string: #"{"held":\#(hold.count >> 20)}"#)
    case "oversize":
        return ByteBuffer(bytes: pattern(chaos.bytes ?? (7 << 20), seed: 1))
    case "upload":
        // Uploads a patterned image for a gateway job; optionally dies after some chunks.
        guard let invocation else { throw FunctionError(errorType: "Chaos.Error", errorMessage: "upload needs a gateway event") }
        if let first = chaos.succeedFromAttempt, invocation.attempt < first {
            // Upload part of the image first, so a retry has something to roll back.
            _ = try? await ChunkUploader().uploadChunks(Array(pattern(invocation.chunkSize, seed: 99)), for: invocation)
            throw FunctionError(errorType: "Chaos.Flaky", errorMessage: "failing attempt \(invocation.attempt) as asked")
        }
        let image = pattern(chaos.bytes ?? 100_000, seed: 7)
        if let crashAt = chaos.crashAtChunk {
            // Upload only the first chunks, never complete, and die.
            let cut = min(image.count, crashAt * invocation.chunkSize)
            _ = try? await ChunkUploader().uploadChunks(Array(image[0..<cut]), for: invocation)
            exit(4)
        }
        let manifest = try await ChunkUploader().upload(image, contentType: "application/octet-stream", for: invocation)
        return ByteBuffer(bytes: try JSONEncoder().encode(manifest))
    default:
        let pid = ProcessInfo.processInfo.processIdentifier
        let response: [String: String] = [
            "pid": String(pid), "requestId": context.requestID, "arn": context.invokedFunctionARN,
            "event": String(decoding: data, as: UTF8.self),
            "function": ProcessInfo.processInfo.environment["AWS_LAMBDA_FUNCTION_NAME"] ?? "",
            "memory": ProcessInfo.processInfo.environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] ?? "",
        ]
        return ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: response, options: [.sortedKeys]))
    }
}.run()
