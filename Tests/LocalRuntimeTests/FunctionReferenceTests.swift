import Foundation
import Testing

@testable import LocalRuntime

/// Function names as the Lambda API takes them, resolved as AWS resolves them.
@Suite(.timeLimit(.minutes(1))) struct FunctionReferenceTests {
    static let registry = try! FunctionRegistry([FunctionConfiguration(name: "chaos", command: ["true"])])

    static func resolve(_ name: String, qualifier: String? = nil) throws(RuntimeError) -> String {
        try FunctionReference(parsing: name, qualifier: qualifier, action: "InvokeFunction").resolve(in: registry).name
    }

    @Test(arguments: [
        ("chaos", nil), ("chaos:$LATEST", nil), ("chaos", "$LATEST"), ("chaos:$LATEST", "$LATEST"), ("chaos", ""),
        ("arn:aws:lambda:us-east-1:000000000000:function:chaos", nil),
        ("arn:aws:lambda:us-east-1:000000000000:function:chaos:$LATEST", nil),
        ("arn:aws:lambda:us-east-1:000000000000:function:chaos", "$LATEST"),
        ("000000000000:function:chaos", nil), ("000000000000:function:chaos:$LATEST", nil),
        ("function:chaos", nil), ("us-east-1:000000000000:function:chaos", nil),
    ] as [(String, String?)])
    func everyFormAWSTakesNamesTheFunction(name: String, qualifier: String?) throws {
        #expect(try Self.resolve(name, qualifier: qualifier) == "chaos")
    }

    /// Each bad form gets the error type, HTTP status and message AWS answers with.
    @Test(arguments: [
        ("chaos:prod", nil, "ResourceNotFoundException", 404, "Function not found: arn:aws:lambda:us-east-1:000000000000:function:chaos:prod"),
        ("chaos", "7", "ResourceNotFoundException", 404, "Function not found: arn:aws:lambda:us-east-1:000000000000:function:chaos:7"),
        ("other", nil, "ResourceNotFoundException", 404, "Function not found: arn:aws:lambda:us-east-1:000000000000:function:other"),
        (
            "arn:aws:lambda:eu-west-1:000000000000:function:chaos", nil, "ResourceNotFoundException", 404,
            "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"
        ),
        (
            "arn:aws:lambda:us-east-1:111111111111:function:chaos", nil, "AccessDeniedException", 403,
            "User: arn:aws:iam::000000000000:root is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:111111111111:function:chaos because no resource-based policy allows the lambda:InvokeFunction action"
        ),
        (
            "chaos:$LATEST", "prod", "InvalidParameterValueException", 400,
            "The derived qualifier from the function name does not match the specified qualifier."
        ),
        (
            "bad name!", nil, "ValidationException", 400,
            "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: \(FunctionReference.awsNamePattern)"
        ),
        (
            "chaos", "bad qualifier!", "ValidationException", 400,
            "1 validation error detected: Value 'bad qualifier!' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
        ),
        (
            String(repeating: "a", count: 65), nil, "ValidationException", 400,
            "1 validation error detected: Value '\(String(repeating: "a", count: 65))' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 64"
        ),
        ("arn:aws:lambda:us-east-1:000000000000:function:", nil, "ValidationException", 400, nil),
        ("chaos:", nil, "ValidationException", 400, nil),
    ] as [(String, String?, String, Int, String?)])
    func badFormsGetAWSsErrors(name: String, qualifier: String?, type: String, status: Int, message: String?) {
        let error = #expect(throws: RuntimeError.self) { try Self.resolve(name, qualifier: qualifier) }
        #expect(error?.code.description == type)
        #expect(error.map { Int($0.status.code) } == status)
        if let message { #expect(error?.message == message) }
    }
}
