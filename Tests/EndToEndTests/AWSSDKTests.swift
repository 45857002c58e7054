import Foundation
import TestSupport
import Testing

extension EndToEnd {
    /// An AWS SDK (boto3) pointed at the local runtime's Invoke API, with any credentials, as a user's code would be.
    @Suite(.timeLimit(.minutes(10))) struct AWSSDKTests {
        static func python() async -> String? { await pythonInterpreter(with: "boto3") }

        static let script = #"""
        import base64, json, os, sys, tempfile, time
        import boto3, botocore
        client = boto3.client(
            "lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )
        out = {}
        r = client.invoke(FunctionName="chaos", Payload=json.dumps({"mode": "echo"}), LogType="Tail")
        out["status"] = r["StatusCode"]
        out["payload"] = json.loads(r["Payload"].read())
        out["log"] = base64.b64decode(r["LogResult"]).decode()
        r = client.invoke(FunctionName="chaos", Payload=b'{"mode":"error"}')
        out["functionError"] = r.get("FunctionError")
        out["errorPayload"] = json.loads(r["Payload"].read())
        out["eventStatus"] = client.invoke(FunctionName="chaos", InvocationType="Event", Payload=b'{"mode":"echo"}')["StatusCode"]
        out["dryRunStatus"] = client.invoke(FunctionName="chaos", InvocationType="DryRun")["StatusCode"]
        try:
            client.invoke(FunctionName="no-such-function", Payload=b"{}")
        except client.exceptions.ResourceNotFoundException as error:
            out["notFound"] = error.response["Error"]["Code"]
            out["notFoundMessage"] = error.response["Error"]["Message"]
        try:
            client.invoke(FunctionName="chaos", Payload=b"x" * (6 * 1024 * 1024 + 200))
        except botocore.exceptions.ClientError as error:
            out["tooLarge"] = error.response["Error"]["Code"]
        def pattern(chunks, size):
            return b"".join(bytes((i * 31 + seed) & 0xFF for i in range(size)) for seed in range(chunks))
        def stream(event, gate=None, **kwargs):
            r = client.invoke_with_response_stream(FunctionName="chaos", Payload=json.dumps(event), **kwargs)
            data, complete = b"", None
            for item in r["EventStream"]:
                if "PayloadChunk" in item:
                    data += item["PayloadChunk"]["Payload"]
                    if gate:
                        open(gate, "w").close()
                if "InvokeComplete" in item:
                    complete = item["InvokeComplete"]
            return r, data, complete
        # chaos waits after its first chunk until the gate file exists, which only a client that got that
        # chunk while the function was still running can create.
        gate = os.path.join(tempfile.mkdtemp(), "gate")
        r, data, complete = stream({"mode": "stream", "chunks": 3, "bytes": 20000, "gate": gate}, gate=gate, LogType="Tail")
        out["streamStatus"] = r["StatusCode"]
        out["streamVersion"] = r["ExecutedVersion"]
        out["streamMatches"] = data == pattern(3, 20000)
        out["streamProgressive"] = os.path.exists(gate) and complete is not None and complete.get("ErrorCode") is None
        out["streamError"] = complete.get("ErrorCode")
        out["streamLog"] = base64.b64decode(complete.get("LogResult", "")).decode()
        r, data, complete = stream({"mode": "stream", "chunks": 3, "bytes": 1000, "failAfterChunks": 1})
        out["failedBytes"] = len(data)
        out["failedCode"] = complete.get("ErrorCode")
        out["failedDetails"] = complete.get("ErrorDetails")
        try:
            client.invoke_with_response_stream(FunctionName="no-such-function", Payload=b"{}")
        except client.exceptions.ResourceNotFoundException as error:
            out["streamNotFound"] = error.response["Error"]["Code"]
        # Every way AWS names a function, on both invoke APIs; then the forms AWS refuses.
        arn = "arn:aws:lambda:us-east-1:000000000000:function:chaos"
        forms = {
            "name": {"FunctionName": "chaos"}, "arn": {"FunctionName": arn}, "partial": {"FunctionName": "000000000000:function:chaos"},
            "latest": {"FunctionName": "chaos:$LATEST"}, "arnLatest": {"FunctionName": arn + ":$LATEST"},
            "qualifier": {"FunctionName": arn, "Qualifier": "$LATEST"},
        }
        out["forms"] = {k: json.loads(client.invoke(Payload=b'{"mode":"echo"}', **kw)["Payload"].read())["function"] for k, kw in forms.items()}
        r = client.invoke_with_response_stream(FunctionName=arn, Qualifier="$LATEST", Payload=json.dumps({"mode": "stream", "chunks": 2, "bytes": 100}))
        out["streamByArn"] = sum(len(item["PayloadChunk"]["Payload"]) for item in r["EventStream"] if "PayloadChunk" in item)
        bad = {
            "alias": {"FunctionName": "chaos:prod"}, "version": {"FunctionName": "chaos", "Qualifier": "7"},
            "region": {"FunctionName": "arn:aws:lambda:eu-west-1:000000000000:function:chaos"},
            "account": {"FunctionName": "arn:aws:lambda:us-east-1:111111111111:function:chaos"},
            "malformed": {"FunctionName": "bad name!"}, "mismatch": {"FunctionName": "chaos:$LATEST", "Qualifier": "prod"},
        }
        out["bad"] = {}
        for k, kw in bad.items():
            try:
                client.invoke(Payload=b"{}", **kw)
                out["bad"][k] = None
            except botocore.exceptions.ClientError as error:
                out["bad"][k] = [error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Message"]]
        try:
            client.invoke_with_response_stream(FunctionName="arn:aws:lambda:eu-west-1:000000000000:function:chaos", Payload=b"{}")
        except botocore.exceptions.ClientError as error:
            out["streamRegion"] = error.response["Error"]["Code"]
        # The control plane's reads, as AWS tooling discovers functions and their URLs.
        out["listed"] = sorted(f["FunctionName"] for f in client.list_functions()["Functions"])
        url = client.get_function_url_config(FunctionName="chaos-stream-url")
        out["urlConfig"] = [url["FunctionUrl"], url["InvokeMode"], url["AuthType"], url["FunctionArn"], url.get("Cors", {}).get("AllowOrigins")]
        try:
            client.get_function_url_config(FunctionName="chaos")
            out["noUrl"] = None
        except client.exceptions.ResourceNotFoundException as error:
            out["noUrl"] = error.response["ResponseMetadata"]["HTTPStatusCode"]
        configuration = client.get_function(FunctionName=arn)["Configuration"]
        out["getFunction"] = [configuration["FunctionName"], configuration["FunctionArn"], configuration["Version"], configuration["State"]]
        mapRender = client.get_function_configuration(FunctionName="map-render")
        out["mapRender"] = [mapRender["MemorySize"], mapRender["Timeout"], mapRender["Runtime"], mapRender["LoggingConfig"]["LogFormat"]]
        print(json.dumps(out))
        """#

        @Test(.enabled("needs boto3 (CI installs it)") { await python() != nil || runningInCI })
        func boto3InvokesFunctions() async throws {
            let python = try #require(await Self.python(), "boto3 is not installed")
            try await withChunkRelay { _, runtime in
                let result = try await run([python, "-c", Self.script, runtime])
                #expect(result.status == 0, "\(result.output)")
                let lastLine = result.output.split(separator: "\n").last.map(String.init) ?? ""
                let out = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any], "\(result.output)")
                #expect(out["status"] as? Int == 200)
                #expect((out["payload"] as? [String: Any])?["function"] as? String == "chaos")
                #expect((out["log"] as? String)?.hasPrefix("START RequestId: ") == true)
                #expect((out["log"] as? String)?.contains("REPORT RequestId: ") == true)
                #expect(out["functionError"] as? String == "Unhandled")
                #expect((out["errorPayload"] as? [String: Any])?["errorType"] as? String == "Chaos.Error")
                #expect(out["eventStatus"] as? Int == 202)
                #expect(out["dryRunStatus"] as? Int == 204)
                #expect(out["notFound"] as? String == "ResourceNotFoundException")
                #expect((out["notFoundMessage"] as? String)?.contains("function:no-such-function") == true)
                #expect(out["tooLarge"] as? String == "RequestEntityTooLargeException")
                // invoke_with_response_stream: botocore decodes the event stream (and checks its CRCs).
                #expect(out["streamStatus"] as? Int == 200)
                #expect(out["streamVersion"] as? String == "$LATEST")
                #expect(out["streamMatches"] as? Bool == true)
                #expect(out["streamProgressive"] as? Bool == true, "chunks arrived while the function was still writing")
                #expect(out["streamError"] == nil || out["streamError"] is NSNull)
                #expect((out["streamLog"] as? String)?.contains("REPORT RequestId: ") == true)
                #expect(out["failedBytes"] as? Int == 1000)
                #expect(out["failedCode"] as? String == "Chaos.StreamError")
                #expect(out["failedDetails"] as? String == "failing after 1 chunks as asked")
                #expect(out["streamNotFound"] as? String == "ResourceNotFoundException")
                // Names and qualifiers as AWS resolves them.
                let forms = try #require(out["forms"] as? [String: String])
                #expect(forms == ["name": "chaos", "arn": "chaos", "partial": "chaos", "latest": "chaos", "arnLatest": "chaos", "qualifier": "chaos"])
                #expect(out["streamByArn"] as? Int == 200)
                let bad = try #require(out["bad"] as? [String: [Any]])
                func refusal(_ form: String) -> (code: String?, status: Int?, message: String?) {
                    (bad[form]?[0] as? String, bad[form]?[1] as? Int, bad[form]?[2] as? String)
                }
                #expect(refusal("alias").code == "ResourceNotFoundException" && refusal("alias").status == 404)
                #expect(refusal("alias").message == "Function not found: arn:aws:lambda:us-east-1:000000000000:function:chaos:prod")
                #expect(refusal("version").code == "ResourceNotFoundException" && refusal("version").message?.hasSuffix("function:chaos:7") == true)
                #expect(refusal("region").code == "ResourceNotFoundException" && refusal("region").status == 404)
                #expect(refusal("region").message == "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')")
                #expect(refusal("account").code == "AccessDeniedException" && refusal("account").status == 403)
                #expect(refusal("malformed").code == "ValidationException" && refusal("malformed").status == 400)
                #expect(refusal("malformed").message?.hasPrefix("1 validation error detected: Value 'bad name!' at 'functionName'") == true)
                #expect(refusal("mismatch").code == "InvalidParameterValueException" && refusal("mismatch").status == 400)
                #expect(out["streamRegion"] as? String == "ResourceNotFoundException")
                // ListFunctions, GetFunction, GetFunctionConfiguration, GetFunctionUrlConfig.
                let listed = (out["listed"] as? [String]) ?? []
                #expect(["chaos", "chaos-stream-url", "chaos-url", "map-render"].allSatisfy(listed.contains), "\(listed)")
                let urlConfig = (out["urlConfig"] as? [Any]) ?? []
                #expect((urlConfig.first as? String)?.hasPrefix("http://127.0.0.1:") == true, "\(urlConfig)")
                #expect(urlConfig.dropFirst().first as? String == "RESPONSE_STREAM")
                #expect(urlConfig.dropFirst(2).first as? String == "NONE")
                #expect(urlConfig.dropFirst(3).first as? String == "arn:aws:lambda:us-east-1:000000000000:function:chaos-stream-url")
                #expect(urlConfig.last as? [String] == ["*"])
                #expect(out["noUrl"] as? Int == 404)
                #expect(out["getFunction"] as? [String] == ["chaos", "arn:aws:lambda:us-east-1:000000000000:function:chaos", "$LATEST", "Active"])
                let mapRender = (out["mapRender"] as? [Any]) ?? []
                #expect(mapRender.first as? Int == 1024 && mapRender.dropFirst().first as? Int == 120)
                #expect(mapRender.dropFirst(2).first as? String == "provided.al2023" && mapRender.last as? String == "Text")
            }
        }
    }
}
