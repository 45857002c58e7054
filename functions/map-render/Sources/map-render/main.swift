import FunctionKit
import Logging
import MapRender
import RelayProtocol

// The map-render generator function: {"width", "height", "seed"} -> a PNG, uploaded in chunks.
let logger = Logger(label: "map-render")
let runtime = FunctionRuntime(
    handler: GeneratorFunction { event, context in
        var numbers: [String: Double?] = [:]
        for (key, value) in event.params {
            switch value {
            case .number(let number): numbers[key] = number
            case .null: continue
            default: numbers[key] = .some(nil)  // reported as "must be an integer"
            }
        }
        let parameters: MapParameters
        do {
            parameters = try MapParameters(json: numbers)
        } catch {
            throw FunctionError(errorType: "InvalidParameters", errorMessage: "\(error)")
        }
        context.logger.info("rendering \(parameters.width)x\(parameters.height) seed \(parameters.seed)")
        // Encoded row by row as it renders: direct delivery sends the first chunks while the rest is made.
        return GeneratedImage(contentType: MapRenderer.contentType) { emit in MapRenderer.renderPNG(parameters, emit: emit) }
    },
    logger: logger
)
try await runtime.run()
