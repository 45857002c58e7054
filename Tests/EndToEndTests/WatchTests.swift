import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

@testable import ChunkRelayBench
@testable import chunkrelay

extension EndToEnd {
    /// `serve --watch`: a function's source is edited while serve runs, and the next invocation runs the
    /// new code, though a warm environment of the old code was waiting.
    @Suite(.timeLimit(.minutes(5))) struct WatchTests {
        /// A standard-library Python function answering `{"version": N}`; its build step appends a line to
        /// `builds.log`, so the test sees each build run, and fails while a file `broken` exists.
        static func writeFunction(version: Int, in folder: URL) throws {
            try """
            import http.client, json, os
            API = os.environ["AWS_LAMBDA_RUNTIME_API"]
            VERSION = \(version)
            while True:
                c = http.client.HTTPConnection(API)
                c.request("GET", "/2018-06-01/runtime/invocation/next")
                r = c.getresponse()
                request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
                r.read()
                c.close()
                c = http.client.HTTPConnection(API)
                c.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=json.dumps({"version": VERSION}))
                c.getresponse().read()
                c.close()

            """.write(to: folder.appendingPathComponent("app.py"), atomically: true, encoding: .utf8)
        }

        static func invoke(_ runtime: String) async throws -> String {
            var request = HTTPClientRequest(url: "\(runtime)/2015-03-31/functions/versioned/invocations")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: "{}"))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            return String(buffer: try await response.body.collect(upTo: 1 << 20))
        }

        @Test func anEditedFunctionRunsItsNewCodeOnTheNextInvocation() async throws {
            try await withScratchDirectory("watch") { root in
                let folder = root.appendingPathComponent("functions/versioned")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try #"""
                {"name": "versioned", "runtime": "python3.11", "handler": "app.py", "command": ["python3", "app.py"],
                 "build": [["sh", "-c", "test ! -e broken && echo built >> builds.log"]], "timeout": 10, "reservedConcurrency": 1}
                """#.write(to: folder.appendingPathComponent("function.json"), atomically: true, encoding: .utf8)
                try Self.writeFunction(version: 1, in: folder)

                let serve = try await ServeProcess.start(stateDirectory: root.appendingPathComponent("state"), functions: root.appendingPathComponent("functions"), arguments: ["--watch"])
                defer { serve.child.signal(SIGKILL) }
                #expect(try await Self.invoke(serve.runtime) == #"{"version": 1}"#)
                #expect(try await Self.invoke(serve.runtime) == #"{"version": 1}"#, "a warm environment answers")
                let builds = folder.appendingPathComponent("builds.log")
                #expect(try String(contentsOf: builds, encoding: .utf8) == "built\n")

                try Self.writeFunction(version: 2, in: folder)
                try await eventually("serve to log the rebuild", within: .seconds(30)) { serve.child.output.contains("rebuilt versioned in ") }
                #expect(try await Self.invoke(serve.runtime) == #"{"version": 2}"#, "the next invocation runs the new code")
                #expect(serve.child.output.contains("versioned changed (app.py); rebuilding"), "\(serve.child.output)")
                #expect(serve.child.output.contains("retired the warm environments of versioned (1 idle stopped"), "\(serve.child.output)")
                #expect(try String(contentsOf: builds, encoding: .utf8) == "built\nbuilt\n", "the build steps ran again, once")

                // The build's own output (builds.log) is not a change: nothing more is rebuilt.
                try await Task.sleep(for: .seconds(2))
                #expect(try String(contentsOf: builds, encoding: .utf8) == "built\nbuilt\n")
                #expect(serve.child.output.components(separatedBy: "rebuilt versioned in ").count == 2)

                // A build that fails leaves the previous build serving, warm environment and all.
                try Data().write(to: folder.appendingPathComponent("broken"))
                try Self.writeFunction(version: 3, in: folder)
                try await eventually("serve to log the failed build", within: .seconds(30)) { serve.child.output.contains("rebuilding versioned failed") }
                #expect(try await Self.invoke(serve.runtime) == #"{"version": 2}"#, "the previous build keeps serving")
                try FileManager.default.removeItem(at: folder.appendingPathComponent("broken"))
                try await eventually("serve to rebuild once fixed", within: .seconds(30)) {
                    serve.child.output.components(separatedBy: "rebuilt versioned in ").count == 3
                }
                #expect(try await Self.invoke(serve.runtime) == #"{"version": 3}"#)
            }
        }
    }
}
