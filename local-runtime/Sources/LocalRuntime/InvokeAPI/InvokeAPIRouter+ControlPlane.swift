import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension InvokeAPIRouter {
    /// The Lambda API's reads that AWS tooling uses to discover functions and their URLs, in AWS's shapes:
    /// `ListFunctions`, `GetFunction`, `GetFunctionConfiguration`, `GetFunctionUrlConfig`.
    static func addControlPlane(to router: Router<BasicRequestContext>, runtime: LocalRuntime) {
        let started = Self.awsTimestamp(Date())
        // Also matches the trailing slash boto3 sends (`/2015-03-31/functions/`).
        router.get("/2015-03-31/functions") { _, _ -> Response in
            let functions = runtime.registry.functions.values.sorted { $0.name < $1.name }.map { configuration($0, lastModified: started) }
            return try json(["Functions": functions])
        }
        router.get("/2015-03-31/functions/{name}") { request, context -> Response in
            let function = try resolve(request, context: context, runtime: runtime, action: "GetFunction")
            var answer: [String: Any] = [
                "Configuration": configuration(function, lastModified: started),
                "Code": ["RepositoryType": "Local", "Location": function.directory?.absoluteString ?? ""],
                "Tags": [String: String](),
            ]
            if let reserved = function.reservedConcurrency { answer["Concurrency"] = ["ReservedConcurrentExecutions": reserved] }
            return try json(answer)
        }
        router.get("/2015-03-31/functions/{name}/configuration") { request, context -> Response in
            try json(configuration(try resolve(request, context: context, runtime: runtime, action: "GetFunctionConfiguration"), lastModified: started))
        }
        router.get("/2021-10-31/functions/{name}/url") { request, context -> Response in
            let function = try resolve(request, context: context, runtime: runtime, action: "GetFunctionUrlConfig")
            guard let config = function.url, let url = runtime.functionURL(of: function.name) else {
                throw RuntimeError(.functionNotFound, "The resource you requested does not exist.")
            }
            var answer: [String: Any] = [
                "FunctionUrl": url, "FunctionArn": RuntimeConfiguration.arn(function.name), "AuthType": config.authType,
                "CreationTime": started, "LastModifiedTime": started, "InvokeMode": config.invokeMode.rawValue,
            ]
            if let cors = config.cors { answer["Cors"] = cors.awsShape }
            return try json(answer)
        }
    }

    private static func resolve(_ request: Request, context: BasicRequestContext, runtime: LocalRuntime, action: String) throws -> FunctionConfiguration {
        let name = try resolveName(request, context: context, registry: runtime.registry, action: action)
        guard let function = runtime.registry.function(named: name) else { throw RuntimeError.functionNotFound(name) }
        return function
    }

    /// `FunctionConfiguration` as the Lambda API returns it.
    static func configuration(_ function: FunctionConfiguration, lastModified: String) -> [String: Any] {
        var shape: [String: Any] = [
            "FunctionName": function.name,
            "FunctionArn": RuntimeConfiguration.arn(function.name),
            "Runtime": function.runtime,
            "Role": "arn:aws:iam::\(RuntimeConfiguration.account):role/lambda-role",
            "Handler": function.handler,
            "CodeSize": 0,
            "Description": function.description ?? "",
            "Timeout": Int(function.timeout.rounded(.up)),
            "MemorySize": function.memorySize,
            "LastModified": lastModified,
            "CodeSha256": "",
            "Version": "$LATEST",
            "TracingConfig": ["Mode": "PassThrough"],
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": [architecture],
            "EphemeralStorage": ["Size": 512],
        ]
        if !function.environment.isEmpty { shape["Environment"] = ["Variables": function.environment] }
        var logging: [String: Any] = [
            "LogFormat": (function.loggingConfig?.logFormat ?? .text).rawValue, "LogGroup": "/aws/lambda/\(function.name)",
        ]
        if let level = function.loggingConfig?.applicationLogLevel { logging["ApplicationLogLevel"] = level.rawValue }
        if let level = function.loggingConfig?.systemLogLevel { logging["SystemLogLevel"] = level.rawValue }
        shape["LoggingConfig"] = logging
        return shape
    }

    /// This machine's architecture as Lambda names it.
    static var architecture: String {
        #if arch(arm64)
        return "arm64"
        #else
        return "x86_64"
        #endif
    }

    /// Lambda's timestamps: `2026-11-24T23:50:00.000+0000`.
    static func awsTimestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
        return formatter.string(from: date)
    }

    private static func json(_ object: [String: Any]) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
