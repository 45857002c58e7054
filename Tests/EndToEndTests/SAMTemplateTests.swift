import ChunkRelayServer
import ChunkRelayTesting
import Foundation
import LocalRuntime
import TestSupport
import Testing
import ZIPFoundation

extension EndToEnd {
    /// `samples/sam/template.yaml` run as a SAM user runs it: Python, Node.js, provided.al2023 (folder and
    /// .zip) and Swift functions through boto3, gateway jobs, Function URLs (curl), the API port (httpx)
    /// and `chunkrelay test` fixtures; real processes throughout.
    @Suite(.timeLimit(.minutes(10))) struct SAMTemplateTests {
        static let template = repositoryRoot.appendingPathComponent("samples/sam/template.yaml")
        static let functions = ["PythonGenerator", "NodeBuffered", "NodeStreamed", "ShellBootstrap", "ShellBootstrapZip", "SwiftGenerator"]

        /// The sample template's functions (and no functions folder), on free ports.
        static func withSample<T: Sendable>(
            configure: @escaping @Sendable (inout ServeConfiguration) -> Void = { _ in }, _ body: @Sendable (ChunkRelayInstance) async throws -> T
        ) async throws -> T {
            let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-functions-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: empty) }
            return try await ChunkRelayTesting.withChunkRelay(functions: empty, configure: { configuration in
                configuration.template = template
                configuration.runtime.packageRoot = repositoryRoot
                configure(&configuration)
            }, body)
        }

        static let boto3Script = #"""
        import json, os, sys
        import boto3, botocore
        client = boto3.client(
            "lambda", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )
        out = {}
        for name in sys.argv[2:]:
            r = client.invoke(FunctionName=name, Payload=json.dumps({"pathParameters": {"name": "sdk"}}))
            out[name] = {"status": r["StatusCode"], "error": r.get("FunctionError"), "payload": r["Payload"].read().decode(errors="replace")}
        # botocore sends X-Amzn-Trace-Id from _X_AMZN_TRACE_ID when it runs inside a function (its
        # recursion detection): the invoked function continues that trace.
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "caller"
        os.environ["_X_AMZN_TRACE_ID"] = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        r = client.invoke(FunctionName="PythonGenerator", Payload=b'{}')
        out["traced"] = json.loads(json.loads(r["Payload"].read())["body"])["trace"]
        print(json.dumps(out))
        """#

        @Test(.enabled("needs boto3 (CI installs it)") { await AWSSDKTests.python() != nil || runningInCI })
        func everyRuntimeAnswersBoto3AndContinuesTheCallersTrace() async throws {
            let python = try #require(await AWSSDKTests.python(), "boto3 is not installed")
            try await Self.withSample { relay in
                let result = try await run([python, "-c", Self.boto3Script, relay.runtimeURL] + Self.functions)
                #expect(result.status == 0, "\(result.output)")
                let lastLine = result.output.split(separator: "\n").last.map(String.init) ?? ""
                let out = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any], "\(result.output)")
                func answer(_ name: String) -> [String: Any] { out[name] as? [String: Any] ?? [:] }
                for name in Self.functions { #expect(answer(name)["status"] as? Int == 200, "\(name): \(answer(name))") }

                let python = try JSONSerialization.jsonObject(with: Data((answer("PythonGenerator")["payload"] as? String ?? "").utf8)) as? [String: Any]
                let body = try JSONSerialization.jsonObject(with: Data((python?["body"] as? String ?? "").utf8)) as? [String: Any]
                #expect(body?["message"] as? String == "hello from us-east-1, sdk", "Globals' GREETING, resolved from !Sub")
                #expect(body?["detail"] as? String == "verbose", "!If on the IsLocal condition")
                let trace = try #require(body?["trace"] as? String)
                #expect(trace.wholeMatch(of: /Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0/) != nil, "\(trace)")
                #expect(out["traced"] as? String != nil)
                #expect((out["traced"] as? String)?.hasPrefix("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=") == true, "\(out["traced"] ?? "")")
                #expect((out["traced"] as? String)?.hasSuffix(";Sampled=1") == true)

                let node = try JSONSerialization.jsonObject(with: Data((answer("NodeBuffered")["payload"] as? String ?? "").utf8)) as? [String: Any]
                let nodeBody = try JSONSerialization.jsonObject(with: Data((node?["body"] as? String ?? "").utf8)) as? [String: Any]
                #expect(nodeBody?["runtime"] as? String == "node", "\(answer("NodeBuffered"))")
                #expect(answer("NodeBuffered")["error"] == nil || answer("NodeBuffered")["error"] is NSNull)
                #expect((answer("ShellBootstrap")["payload"] as? String)?.contains(#""function":"ShellBootstrap""#) == true, "\(answer("ShellBootstrap"))")
                #expect((answer("ShellBootstrapZip")["payload"] as? String)?.contains(#""function":"ShellBootstrapZip""#) == true)
                // map-render takes only job events: its FunctionKit answers the SDK with its own error.
                #expect(answer("SwiftGenerator")["error"] as? String == "Unhandled")
                #expect((answer("SwiftGenerator")["payload"] as? String)?.contains(#""errorType":"InvalidEvent""#) == true)
            }
        }

        @Test func theTemplatesFixturesPassThroughTheGatewayInEveryRuntime() async throws {
            let fixtures = try Fixture.load(functions: URL(fileURLWithPath: "/nonexistent"), template: Self.template)
            #expect(Set(fixtures.map(\.function)) == Set(Self.functions))
            let results = try await Self.withSample { relay in
                try await FixtureRunner(client: relay.client).run(fixtures)
            }
            #expect(results.count == 12, "retrieve and stream of six cases")
            for result in results { #expect(result.problems.isEmpty, "\(result.fixture.id) \(result.delivery): \(result.problems)") }
            // The Python and the Node.js modules split at the cap: two chunks each.
            let chunks = results.map { result -> Int? in
                if case .image(let image) = result.outcome { return image.chunks }
                return nil
            }
            #expect(chunks.filter { $0 == 2 }.count == 10, "\(chunks)")
        }

        @Test(.enabled("needs curl (CI installs it)") { executableInPath(["curl"]) != nil || runningInCI })
        func nodeFunctionURLsAnswerBufferedAndStreamedAsLambdaDoes() async throws {
            try await Self.withSample { relay in
                let buffered = try await Self.functionURL(relay, "NodeBuffered")
                var result = try await run(["curl", "-sS", "-i", "\(buffered)a/b?x=1"])
                #expect(result.status == 0)
                #expect(result.output.hasPrefix("HTTP/1.1 200"), "\(result.output)")
                #expect(result.output.contains(#""method":"GET","path":"/a/b""#), "\(result.output)")

                let streamed = try await Self.functionURL(relay, "NodeStreamed")
                result = try await run(["curl", "-sS", "-i", "\(streamed)?lines=3", "-H", "Origin: http://example.test"])
                #expect(result.status == 0)
                #expect(result.output.lowercased().contains("transfer-encoding: chunked"), "\(result.output)")
                #expect(result.output.lowercased().contains("access-control-allow-origin: *"), "the AWS::Lambda::Url's Cors")
                #expect(result.output.hasSuffix("line 0\nline 1\nline 2\n"), "\(result.output)")
                // A handler that throws before writing: Lambda's 502. After writing: the body breaks off
                // (curl 18: the chunked body never ended), so a client cannot take it for whole.
                result = try await run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "\(streamed)?fail=before"])
                #expect(result.output.hasPrefix("502"), "\(result.output)")
                result = try await run(["curl", "-sS", "\(streamed)?fail=during&lines=2"])
                #expect(result.status == 18, "\(result.status): \(result.output)")
                #expect(result.output.contains("line 0\nline 1\n"), "\(result.output)")
            }
        }

        static let httpxScript = #"""
        import json, sys, httpx
        base = sys.argv[1]
        out = {}
        r = httpx.get(f"{base}/hello/ann%20lee?x=1&x=2", headers={"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"})
        out["rest"] = [r.status_code, r.headers.get("content-type"), r.json()]
        r = httpx.get(f"{base}/tiles/3/4/5.png")
        out["http"] = [r.status_code, r.json()]
        r = httpx.post(f"{base}/hello/ann")
        out["wrongMethod"] = [r.status_code, r.json()]
        r = httpx.get(f"{base}/nothing/here")
        out["noRoute"] = [r.status_code, r.json()]
        print(json.dumps(out))
        """#

        @Test(.enabled("needs httpx (CI installs it)") { await pythonInterpreter(with: "httpx") != nil || runningInCI })
        func apiEventsAnswerOnTheAPIPortAsSamLocalStartAPIDoes() async throws {
            let python = try #require(await pythonInterpreter(with: "httpx"), "httpx is not installed")
            try await Self.withSample { relay in
                let api = try #require(await Self.eventually { relay.apiURL }, "the API port never listened")
                let result = try await run([python, "-c", Self.httpxScript, api])
                #expect(result.status == 0, "\(result.output)")
                let lastLine = result.output.split(separator: "\n").last.map(String.init) ?? ""
                let out = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any], "\(result.output)")
                let rest = out["rest"] as? [Any] ?? []
                #expect(rest.first as? Int == 200, "\(rest)")
                #expect(rest.dropFirst().first as? String == "application/json")
                let answer = rest.last as? [String: Any] ?? [:]
                #expect(answer["message"] as? String == "hello from us-east-1, ann lee", "the {name} path parameter, decoded")
                #expect((answer["trace"] as? String)?.hasPrefix("Root=1-5759e988-bd862e3fe1be46a994272793;") == true, "\(answer)")
                let http = out["http"] as? [Any] ?? []
                #expect(http.first as? Int == 200)
                #expect((http.last as? [String: Any])?["proxy"] as? String == "3/4/5.png", "\(http)")
                #expect((http.last as? [String: Any])?["path"] as? String == "/tiles/3/4/5.png")
                #expect((out["wrongMethod"] as? [Any])?.first as? Int == 404, "\(out)")
                #expect(((out["noRoute"] as? [Any])?.last as? [String: Any])?["message"] as? String == "Not Found")
            }
        }

        @Test func chunkrelayTestRunsTheTemplatesFixturesFromTheCommandLine() async throws {
            // --functions names this package's folder so that the Swift product is found built beside
            // the binary (a nested `swift build` would wait for this test run's build lock); the
            // arguments keep the run to the template's functions.
            let result = try await run(
                [ServeProcess.binary.path, "test", "--template", Self.template.path, "--functions", repositoryRoot.appendingPathComponent("functions").path]
                    + Self.functions)
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("6 cases, 12 runs: 12 passed, 0 failed"), "\(result.output)")
        }

        @Test func envVarsApplyByLogicalIdAsSAMAppliesThem() throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("env-vars-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let file = folder.appendingPathComponent("env.json")
            try Data(#"{"Parameters": {"STAGE": "from-file"}, "NodeBuffered": {"STAGE": "node-only", "EXTRA": "1"}}"#.utf8).write(to: file)
            var configuration = ServeConfiguration()
            configuration.functionsDirectory = folder
            configuration.template = Self.template
            configuration.environmentFile = file
            configuration.gateway.stateDirectory = folder.appendingPathComponent("state")
            let registry = try ChunkRelayServer.registry(configuration, logger: .init(label: "env-vars"))
            #expect(registry.function(named: "PythonGenerator")?.environment["STAGE"] == "from-file")
            #expect(registry.function(named: "PythonGenerator")?.environment["GREETING"] == "hello from us-east-1", "the template's own stays")
            #expect(registry.function(named: "NodeBuffered")?.environment["STAGE"] == "node-only")
            #expect(registry.function(named: "NodeBuffered")?.environment["EXTRA"] == "1")
        }

        @Test func aBrokenTemplateStopsServeNamingThePlace() async throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("broken-template-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let file = folder.appendingPathComponent("template.yaml")
            try Data("""
                Resources:
                  Tiles:
                    Type: AWS::Serverless::Function
                    Properties:
                      Runtime: python3.12
                      Handler: app.handler
                      Timeout: !GetAZs ""
                """.utf8).write(to: file)
            let result = try await run([
                ServeProcess.binary.path, "serve", "--template", file.path, "--port", "0", "--runtime-port", "0", "--api-port", "0",
                "--state-dir", folder.appendingPathComponent("state").path, "--functions", folder.path,
            ])
            #expect(result.status != 0)
            #expect(result.output.contains("template.yaml:7: Resources.Tiles.Properties.Timeout: Fn::GetAZs is not supported here"), "\(result.output)")
        }

        @Test(.enabled("mounts a tmpfs: needs root") { SmallDisk.available })
        func aZipThatDoesNotFitFailsLikeABuildAndLeavesNoHalfUnpackedFolder() async throws {
            try await SmallDisk.with(megabytes: 2) { disk in
                // A bootstrap and 4 MiB of zeros: a few KiB zipped, more than the disk unpacked.
                let source = FileManager.default.temporaryDirectory.appendingPathComponent("zip-source-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: source) }
                let bootstrap = repositoryRoot.appendingPathComponent("samples/sam/provided/bootstrap")
                try FileManager.default.copyItem(at: bootstrap, to: source.appendingPathComponent("bootstrap"))
                try Data(count: 4 << 20).write(to: source.appendingPathComponent("padding.bin"))
                let archive = source.deletingLastPathComponent().appendingPathComponent("big-\(UUID().uuidString).zip")
                defer { try? FileManager.default.removeItem(at: archive) }
                try FileManager.default.zipItem(at: source, to: archive, shouldKeepParent: false, compressionMethod: .deflate)
                let template = source.deletingLastPathComponent().appendingPathComponent("zip-\(UUID().uuidString).yaml")
                defer { try? FileManager.default.removeItem(at: template) }
                try Data("""
                    Resources:
                      Big:
                        Type: AWS::Serverless::Function
                        Properties: {Runtime: provided.al2023, Handler: x, CodeUri: \(archive.path)}
                    """.utf8).write(to: template)
                let state = disk.url.appendingPathComponent("state")
                let runtime = LocalRuntime(
                    configuration: RuntimeConfiguration(),
                    registry: try FunctionRegistry(try LambdaTemplate(contentsOf: template, stateDirectory: state).functions),
                    logger: .init(label: "zip-test")
                )
                let unpacked = state.appendingPathComponent("unpacked/Big")
                do throws(RuntimeError) {
                    _ = try await runtime.invoke("Big", payload: .init(string: "{}"))
                    Issue.record("a zip bigger than the disk was unpacked")
                } catch {
                    #expect(error.code == .buildFailed)
                    #expect(error.message.contains("ran out of disk space"), "\(error.message)")
                }
                #expect(!FileManager.default.fileExists(atPath: unpacked.path), "no half-unpacked folder is left to pass for the function")
                // Space freed: the next invocation unpacks it whole and it runs.
                try disk.resize(megabytes: 16)
                let result = try await withRunningRuntime(runtime) { try await runtime.invoke("Big", payload: .init(string: "{}")) }
                #expect(result.succeeded, "\(String(buffer: result.payload))")
                #expect(String(buffer: result.payload).contains(#""function":"Big""#))
                #expect(FileManager.default.isExecutableFile(atPath: unpacked.appendingPathComponent("bootstrap").path), "its mode kept")
            }
        }

        @Test func theShippedZipHoldsTheBootstrapFolderAsItIs() throws {
            let archive = try Archive(url: repositoryRoot.appendingPathComponent("samples/sam/provided.zip"), accessMode: .read, pathEncoding: nil)
            let entry = try #require(archive["bootstrap"])
            var bytes = Data()
            _ = try archive.extract(entry) { bytes.append($0) }
            #expect(bytes == (try Data(contentsOf: repositoryRoot.appendingPathComponent("samples/sam/provided/bootstrap"))), "rebuild provided.zip from provided/")
            #expect(entry.fileAttributes[.posixPermissions] as? Int16 == 0o755)
        }

        static func functionURL(_ relay: ChunkRelayInstance, _ name: String) async throws -> String {
            try #require(await eventually { relay.functionURL(of: name) }, "\(name)'s URL never listened")
        }

        /// `value()` once it is not nil, within 10 s.
        static func eventually(_ value: @Sendable () -> String?) async -> String? {
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if let found = value() { return found }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }
    }
}

/// Runs `runtime` as a service for the length of `body` (its environments need `run()`).
private func withRunningRuntime<T: Sendable>(_ runtime: LocalRuntime, _ body: @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await runtime.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body()
    }
}
