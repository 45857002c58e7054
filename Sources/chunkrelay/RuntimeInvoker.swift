import Foundation
import Gateway
import LocalRuntime
import NIOCore
import RelayProtocol

/// Connects the gateway to the local runtime: the gateway's `Invoker`, served by `LocalRuntime`.
/// The two modules never import each other; this adapter is the only place they meet.
struct RuntimeInvoker: Invoker {
    let runtime: LocalRuntime

    func hasFunction(named name: String) -> Bool {
        runtime.registry.function(named: name) != nil
    }

    func concurrencyLimit(function: String) -> Int? {
        runtime.registry.function(named: function)?.reservedConcurrency
    }

    func invoke(function: String, event: InvocationEvent) async -> InvocationOutcome {
        let payload: ByteBuffer
        do {
            payload = ByteBuffer(bytes: try JSONEncoder().encode(event))
        } catch {
            return .failed(JobError(code: "invalid_event", message: "could not encode the invocation event: \(error)"))
        }
        guard payload.readableBytes <= RelayLimits.lambdaAsyncEventPayload else {
            return .failed(JobError(code: "event_too_large", message: "the invocation event is \(payload.readableBytes) bytes; Lambda's async limit is \(RelayLimits.lambdaAsyncEventPayload)"))
        }
        do {
            let result = try await runtime.invoke(function, payload: payload)
            switch result.status {
            case .success:
                return .succeeded
            case .functionError:
                return .failed(JobError(code: "function_error", message: "\(result.errorType ?? "Unhandled"): \(result.errorMessage ?? "")"))
            case .timedOut:
                return .failed(JobError(code: "function_timeout", message: result.errorMessage ?? "the function timed out"))
            case .cancelled:
                return .failed(JobError(code: "cancelled", message: "the invocation was cancelled"))
            case .environmentFailure:
                return .failed(JobError(code: "function_crashed", message: "\(result.errorType ?? "Runtime.ExitError"): \(result.errorMessage ?? "")"))
            }
        } catch {
            return .failed(JobError(code: "invoke_failed", message: error.description))
        }
    }
}
