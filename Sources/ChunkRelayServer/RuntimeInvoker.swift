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

    func invoke(
        function: String, event: InvocationEvent, retry: @escaping @Sendable (JobError) async -> InvocationEvent?
    ) async -> InvocationOutcome {
        let payload: ByteBuffer
        do {
            payload = ByteBuffer(bytes: try JSONEncoder().encode(event))
        } catch {
            return .failed(JobError(code: "invalid_event", message: "could not encode the invocation event: \(error)"))
        }
        let limit = runtime.registry.function(named: function)?.maximumEventBytes ?? RelayLimits.lambdaAsyncEventPayload
        guard payload.readableBytes <= limit else {
            return .failed(JobError(code: "event_too_large", message: "the invocation event is \(payload.readableBytes) bytes; the function's async event limit is \(limit)"))
        }
        do {
            let result = try await runtime.invokeRetrying(function, payload: payload) { failed, _ in
                guard let next = await retry(Self.jobError(failed)) else { return nil }
                return try? ByteBuffer(bytes: JSONEncoder().encode(next))
            }
            if result.succeeded { return .succeeded }
            return .failed(Self.jobError(result))
        } catch {
            return .failed(JobError(code: "invoke_failed", message: error.description))
        }
    }

    func gauges() -> [String: Int] {
        runtime.gauges
    }

    func functions() -> [FunctionSummary] {
        runtime.registry.functions.values.sorted { $0.name < $1.name }.map { function in
            FunctionSummary(name: function.name, url: runtime.functionURL(of: function.name), invokeMode: function.url?.invokeMode.rawValue)
        }
    }

    /// How a failed invocation is described to the job's client.
    static func jobError(_ result: InvocationResult) -> JobError {
        switch result.status {
        case .success:
            return JobError(code: "ok", message: "")
        case .functionError:
            return JobError(code: "function_error", message: "\(result.errorType ?? "Unhandled"): \(result.errorMessage ?? "")")
        case .timedOut:
            return JobError(code: "function_timeout", message: result.errorMessage ?? "the function timed out")
        case .cancelled:
            return JobError(code: "cancelled", message: "the invocation was cancelled")
        case .environmentFailure:
            return JobError(code: "function_crashed", message: "\(result.errorType ?? "Runtime.ExitError"): \(result.errorMessage ?? "")")
        }
    }
}
