import Foundation
import TestSupport
import Testing

@testable import LocalRuntime

/// SAM and CloudFormation templates read as `sam local` reads them, without sockets or processes.
@Suite(.timeLimit(.minutes(1))) struct TemplateTests {
    static let sample = repositoryRoot.appendingPathComponent("samples/sam/template.yaml")
    static let state = FileManager.default.temporaryDirectory.appendingPathComponent("template-tests-\(UUID().uuidString)")

    /// Writes `text` as a template in a fresh folder and reads it.
    static func read(_ text: String, name: String = "template.yaml", overrides: [String: String] = [:]) throws(RuntimeError) -> LambdaTemplate {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("template-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent(name)
        try? Data(text.utf8).write(to: file)
        return try LambdaTemplate(contentsOf: file, parameterOverrides: overrides, stateDirectory: state)
    }

    static func function(_ template: LambdaTemplate, _ name: String) throws -> FunctionConfiguration {
        try #require(template.functions.first { $0.name == name }, "no \(name) in \(template.functions.map(\.name))")
    }

    @Test func theSampleTemplatesFunctionsAreNamedByLogicalIdWithGlobalsAndIntrinsicsResolved() throws {
        let template = try LambdaTemplate(contentsOf: Self.sample, stateDirectory: Self.state)
        #expect(template.functions.map(\.name).sorted() == ["NodeBuffered", "NodeStreamed", "PythonGenerator", "ShellBootstrap", "ShellBootstrapZip", "SwiftGenerator"])
        let python = try Self.function(template, "PythonGenerator")
        #expect(python.runtime == "python3.11")
        #expect(python.handler == "app.lambda_handler")
        #expect(python.timeout == 30)
        #expect(python.memorySize == 512)
        #expect(python.directory?.path == repositoryRoot.appendingPathComponent("samples/sam/python").path)
        #expect(python.command?.last?.hasSuffix("Support/python/bootstrap.py") == true, "\(python.command ?? [])")
        // Globals' variables under the function's own; Ref, Sub with a pseudo parameter, GetAtt, If.
        #expect(python.environment == [
            "STAGE": "local", "GREETING": "hello from us-east-1", "SELF_ARN": "arn:aws:lambda:us-east-1:000000000000:function:PythonGenerator",
            "LOG_DETAIL": "verbose",
        ])
        #expect(python.architectures == ["arm64"])

        let node = try Self.function(template, "NodeBuffered")
        #expect(node.command?.first == "node")
        #expect(node.url?.invokeMode == .buffered)
        let streamed = try Self.function(template, "NodeStreamed")
        #expect(streamed.url?.invokeMode == .responseStream, "from the AWS::Lambda::Url resource")
        #expect(streamed.url?.cors?.allowOrigins == ["*"])

        let shell = try Self.function(template, "ShellBootstrap")
        #expect(shell.command == ["./bootstrap"])
        #expect(shell.maximumRetryAttempts == 0)
        let zipped = try Self.function(template, "ShellBootstrapZip")
        #expect(zipped.archive?.lastPathComponent == "provided.zip")
        #expect(zipped.directory?.path == Self.state.appendingPathComponent("unpacked/ShellBootstrapZip").path)

        let swift = try Self.function(template, "SwiftGenerator")
        #expect(swift.swiftProduct == "map-render")
        #expect(swift.swiftPackage?.standardizedFileURL.path == repositoryRoot.path)
        #expect(swift.reservedConcurrency == 2)
        #expect(swift.memorySize == 1024)

        #expect(template.routes == [
            APIRoute(kind: .rest, method: "GET", path: "/hello/{name}", function: "PythonGenerator", payloadFormat: "1.0"),
            APIRoute(kind: .http, method: "GET", path: "/tiles/{proxy+}", function: "NodeBuffered", payloadFormat: "2.0"),
        ])
        // What does not change how a function runs is listed once, never an error.
        let notes = template.notEmulated.joined(separator: "\n")
        #expect(notes.contains("Outputs (HelloApi, PythonGeneratorArn)"))
        #expect(notes.contains("AWS::S3::Bucket (Tiles)"))
        #expect(notes.contains("Nightly (Schedule)"))
        #expect(notes.contains("Policies (NodeStreamed)"))
    }

    @Test func parameterOverridesChangeWhatConditionsAndRefsGiveAndAreChecked() throws {
        let prod = try LambdaTemplate(contentsOf: Self.sample, parameterOverrides: ["Stage": "prod", "Greeting": "hi"], stateDirectory: Self.state)
        let python = try Self.function(prod, "PythonGenerator")
        #expect(python.environment["STAGE"] == "prod")
        #expect(python.environment["LOG_DETAIL"] == "quiet")
        #expect(python.environment["GREETING"] == "hi from us-east-1")
        #expect(throws: RuntimeError.self) { try LambdaTemplate(contentsOf: Self.sample, parameterOverrides: ["Stage": "qa"], stateDirectory: Self.state) }
        do {
            _ = try LambdaTemplate(contentsOf: Self.sample, parameterOverrides: ["Stage": "qa"], stateDirectory: Self.state)
        } catch {
            #expect(error.message.contains("template.yaml:11: Parameters.Stage: \"qa\" is not one of its AllowedValues (local, test, prod)"), "\(error.message)")
        }
        #expect(try LambdaTemplate.parseOverrides(["Stage=prod", "ParameterKey=Greeting,ParameterValue=a=b"]) == ["Stage": "prod", "Greeting": "a=b"])
        #expect(throws: RuntimeError.self) { try LambdaTemplate.parseOverrides(["Stage"]) }
    }

    @Test func anUnsupportedIntrinsicInAFunctionPropertyIsAnErrorNamingItsResourcePropertyAndLine() throws {
        let text = """
            Resources:
              Broken:
                Type: AWS::Serverless::Function
                Properties:
                  Handler: app.handler
                  Runtime: python3.12
                  CodeUri: .
                  Environment:
                    Variables:
                      TABLE: !ImportValue shared-table-name
            """
        do {
            _ = try Self.read(text, name: "broken.yaml")
            Issue.record("an unsupported intrinsic was read")
        } catch {
            #expect(error.message.hasSuffix("broken.yaml:10: Resources.Broken.Properties.Environment: Fn::ImportValue is not supported here (supported: Ref, Fn::Sub, Fn::If, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Base64)"), "\(error.message)")
        }
        // The same in a property that is not read (Policies) is listed, not an error.
        let ignored = try Self.read(text.replacingOccurrences(of: "Environment:", with: "Policies:"))
        #expect(ignored.functions.map(\.name) == ["Broken"])
        #expect(ignored.notEmulated.contains("function property Policies (Broken)"))
    }

    @Test func aMissingParameterIsAnErrorWhereItIsUsed() throws {
        let text = """
            {"Parameters": {"Bucket": {"Type": "String"}},
             "Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
               "Runtime": "nodejs20.x", "Handler": "index.handler", "Code": {"ZipFile": "exports.handler = async () => 1"},
               "Environment": {"Variables": {"BUCKET": {"Fn::Sub": "${Bucket}-files"}}}}}}}
            """
        do {
            _ = try Self.read(text, name: "template.json")
            Issue.record("a parameter without a value was used")
        } catch {
            #expect(error.message.contains("template.json:4: Resources.Fn.Properties.Environment: parameter Bucket (String) has no Default and no --parameter-overrides value"), "\(error.message)")
        }
        let given = try Self.read(text, name: "template.json", overrides: ["Bucket": "tiles"])
        let function = try Self.function(given, "Fn")
        #expect(function.environment == ["BUCKET": "tiles-files"])
        // Code.ZipFile is written as index.js in the state folder, as CloudFormation names inline Node.js code.
        let inline = try #require(function.directory).appendingPathComponent("index.js")
        #expect(try String(contentsOf: inline, encoding: .utf8) == "exports.handler = async () => 1")
    }

    @Test func longAndShortFormsOfTheOtherIntrinsicsResolve() throws {
        let text = """
            Mappings:
              Sizes: {local: {tile: "256"}}
            Parameters:
              Zones: {Type: CommaDelimitedList, Default: "a,b,c"}
            Conditions:
              Never: !Not [!Equals [x, x]]
              Either: !Or [!Condition Never, !Equals [!Select [1, !Ref Zones], b]]
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  InlineCode: "def handler(e, c): return 1"
                  Handler: index.handler
                  Runtime: python3.12
                  Environment:
                    Variables:
                      JOINED: !Join ["-", !Ref Zones]
                      SPLIT: !Select [2, !Split [",", "x,y,z"]]
                      TILE: !FindInMap [Sizes, local, tile]
                      SUBBED: !Sub ["${A}/${!Literal}/${AWS::StackName}", {A: !Ref AWS::AccountId}]
                      ENCODED: {"Fn::Base64": "hi"}
                      EITHER: !If [Either, yes, no]
                      GONE: !If [Never, kept, !Ref AWS::NoValue]
            """
        let function = try Self.function(try Self.read(text), "Fn")
        #expect(function.environment == [
            "JOINED": "a-b-c", "SPLIT": "z", "TILE": "256", "SUBBED": "000000000000/${Literal}/local", "ENCODED": "aGk=", "EITHER": "yes",
        ])
    }

    @Test func runtimesThatNeedDockerAreListedNotRun() throws {
        let text = """
            Resources:
              Java:
                Type: AWS::Serverless::Function
                Properties: {Runtime: java21, Handler: a.B::handle, CodeUri: .}
              Image:
                Type: AWS::Serverless::Function
                Properties: {PackageType: Image, ImageUri: repo/image:1}
              S3:
                Type: AWS::Serverless::Function
                Properties: {Runtime: python3.12, Handler: a.b, CodeUri: {Bucket: b, Key: k}}
            """
        do {
            _ = try Self.read(text)
            Issue.record("code in S3 was read")
        } catch {
            #expect(error.message.contains(":10: Resources.S3.Properties.CodeUri: code in S3 is not emulated"), "\(error.message)")
        }
        let template = try Self.read(text.components(separatedBy: "  S3:")[0])
        #expect(template.functions.isEmpty)
        #expect(template.notEmulated.contains { $0.hasPrefix("function Java: Runtime java21") })
        #expect(template.notEmulated.contains { $0.hasPrefix("function Image: PackageType Image") })
    }

    @Test func routesPickTheMostSpecificPathThenTheMethod() {
        let routes = APIRouteTable(routes: [
            APIRoute(kind: .http, method: "ANY", path: "/{proxy+}", function: "catchAll", payloadFormat: "2.0"),
            APIRoute(kind: .http, method: "GET", path: "/items/{id}", function: "item", payloadFormat: "2.0"),
            APIRoute(kind: .http, method: "GET", path: "/items/special", function: "special", payloadFormat: "2.0"),
            APIRoute(kind: .http, method: "ANY", path: "/items/{id}", function: "anyItem", payloadFormat: "2.0"),
            APIRoute(kind: .http, method: "GET", path: "/files/{path+}", function: "files", payloadFormat: "2.0"),
        ])
        #expect(routes.match(method: "GET", path: "/items/special")?.route.function == "special")
        #expect(routes.match(method: "GET", path: "/items/7")?.route.function == "item")
        #expect(routes.match(method: "GET", path: "/items/7")?.parameters == ["id": "7"])
        #expect(routes.match(method: "DELETE", path: "/items/7")?.route.function == "anyItem")
        #expect(routes.match(method: "GET", path: "/files/a/b%20c.png")?.parameters == ["path": "a/b c.png"])
        #expect(routes.match(method: "POST", path: "/files/a")?.route.function == "catchAll")
        #expect(routes.match(method: "GET", path: "/")?.route.function == nil, "a greedy part needs one segment at least")
    }

    @Test func traceIdsAreXRaysAndContinueACallersRoot() {
        let pattern = /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/
        let begun = XRayTraceID.begin().description
        #expect(begun.wholeMatch(of: pattern) != nil, "\(begun)")
        let incoming = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        let continued = XRayTraceID.continuing(incoming)
        #expect(continued.root == "1-5759e988-bd862e3fe1be46a994272793")
        #expect(continued.sampled)
        #expect(continued.parent != "53995c3f42cd8ad8" && continued.parent.count == 16)
        for bad in ["Root=1-6b0f6e41-eb-YoSP8dM3r1Pk4PEHc_A", "Root=2-5759e988-bd862e3fe1be46a994272793", "garbage", ""] {
            let fresh = XRayTraceID.continuing(bad)
            #expect(fresh.description.wholeMatch(of: pattern) != nil, "\(bad) -> \(fresh)")
        }
    }
}
