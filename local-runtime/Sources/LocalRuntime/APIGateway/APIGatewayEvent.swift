import Foundation
import HTTPTypes
import NIOCore

/// The event an `Api` (REST API) route hands its function: API Gateway's Lambda proxy integration,
/// payload format 1.0, as `sam local start-api` makes it (stage `Prod`).
enum APIGatewayEvent {
    /// The request as the API received it, and its route.
    struct Request {
        var request: FunctionURLEvent.Request
        var resource: String
        var apiID: String
    }

    /// The event as JSON.
    static func make(_ input: Request) -> ByteBuffer {
        let request = input.request
        let (rawPath, rawQuery) = FunctionURLEvent.split(request.target)
        let path = rawPath.removingPercentEncoding ?? rawPath
        var headers: [String: String] = [:]
        var multiHeaders: [String: [String]] = [:]
        for field in request.headers {
            // REST APIs keep the client's spelling of header names.
            headers[field.name.rawName] = headers[field.name.rawName].map { "\($0),\(field.value)" } ?? field.value
            multiHeaders[field.name.rawName, default: []].append(field.value)
        }
        if headers["X-Amzn-Trace-Id"] == nil {
            headers["X-Amzn-Trace-Id"] = "Root=\(request.trace.root)"
            multiHeaders["X-Amzn-Trace-Id"] = [headers["X-Amzn-Trace-Id"]!]
        }
        var query: [String: String] = [:]
        var multiQuery: [String: [String]] = [:]
        for (key, value) in FunctionURLEvent.queryPairs(rawQuery) {
            // A repeated key: the last value single, every value in the multi-value map.
            query[key] = value
            multiQuery[key, default: []].append(value)
        }
        let context: [String: Any] = [
            "accountId": RuntimeConfiguration.account,
            "apiId": input.apiID,
            "domainName": request.headers[HTTPField.Name("host")!] ?? "\(input.apiID).execute-api.\(RuntimeConfiguration.region).amazonaws.com",
            "extendedRequestId": request.requestID,
            "httpMethod": request.method,
            "identity": ["sourceIp": request.sourceIP, "userAgent": request.headers[.userAgent] as Any? ?? NSNull()] as [String: Any],
            "path": "/Prod\(path)",
            "protocol": "HTTP/1.1",
            "requestId": request.requestID,
            "requestTimeEpoch": Int64(request.now.timeIntervalSince1970 * 1000),
            "resourceId": String(input.apiID.prefix(6)),
            "resourcePath": input.resource,
            "stage": "Prod",
        ]
        var event: [String: Any] = [
            "resource": input.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multiHeaders,
            "queryStringParameters": query.isEmpty ? NSNull() : query,
            "multiValueQueryStringParameters": multiQuery.isEmpty ? NSNull() : multiQuery,
            "pathParameters": (request.pathParameters ?? [:]).isEmpty ? NSNull() : request.pathParameters!,
            "stageVariables": NSNull(),
            "requestContext": context,
            "body": NSNull(),
            "isBase64Encoded": false,
        ]
        FunctionURLEvent.setBody(request.body, contentType: request.headers[.contentType], in: &event)
        return FunctionURLEvent.encoded(event)
    }
}
