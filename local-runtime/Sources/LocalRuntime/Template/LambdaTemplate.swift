import Foundation

/// The functions a SAM or CloudFormation template describes (`serve --template`), as `sam local` reads
/// them: `AWS::Serverless::Function` with `Globals`, `AWS::Lambda::Function` with `AWS::Lambda::Url` and
/// `AWS::Lambda::EventInvokeConfig`, each named by its logical id.
///
/// What does not change how a function runs here (`Outputs`, other resource types, event sources but
/// `Api` and `HttpApi`, properties such as `Policies`) is listed in `notEmulated`, never an error; a
/// property that is read and cannot be resolved is an error naming the resource, the property and its
/// line.
public struct LambdaTemplate: Sendable {
    /// The functions, ready for a `FunctionRegistry`.
    public var functions: [FunctionConfiguration]
    /// The `Api` and `HttpApi` events.
    public var routes: [APIRoute]
    /// One line per kind of thing the template holds that is not emulated, for the log.
    public var notEmulated: [String]

    /// The properties of a function this reads; the rest are listed as not emulated.
    static let readProperties: Set<String> = [
        "Handler", "Runtime", "CodeUri", "InlineCode", "Code", "Timeout", "MemorySize", "Environment", "ReservedConcurrentExecutions",
        "FunctionUrlConfig", "LoggingConfig", "EventInvokeConfig", "Architectures", "Events", "Description", "PackageType", "FunctionName",
    ]

    /// Reads `url`. Relative code paths are relative to the template's folder, as SAM reads them; `.zip`
    /// code is unpacked under `stateDirectory` when the function first starts.
    public init(contentsOf url: URL, parameterOverrides: [String: String] = [:], stateDirectory: URL) throws(RuntimeError) {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw RuntimeError(.invalidConfiguration, "\(url.path): cannot read the template: \(error.localizedDescription)")
        }
        let root: TemplateNode
        do {
            root = try TemplateNode.parse(text)
        } catch {
            throw RuntimeError(.invalidConfiguration, "\(url.path): not a YAML or JSON template: \(error)")
        }
        var reader = Reader(file: url, root: root, overrides: parameterOverrides, stateDirectory: stateDirectory)
        try reader.read()
        functions = reader.functions
        routes = reader.routes
        notEmulated = reader.notEmulated
    }

    /// `--parameter-overrides` as SAM takes them: `Key=Value` or `ParameterKey=Key,ParameterValue=Value`.
    public static func parseOverrides(_ arguments: [String]) throws(RuntimeError) -> [String: String] {
        var overrides: [String: String] = [:]
        for argument in arguments {
            if argument.hasPrefix("ParameterKey=") {
                let fields = argument.split(separator: ",", maxSplits: 1).map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
                guard fields.count == 2, fields[0].count == 2, fields[1].count == 2, fields[1][0] == "ParameterValue" else {
                    throw RuntimeError(.invalidConfiguration, "--parameter-overrides: \"\(argument)\" is not ParameterKey=K,ParameterValue=V")
                }
                overrides[fields[0][1]] = fields[1][1]
            } else {
                let pair = argument.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2, !pair[0].isEmpty else {
                    throw RuntimeError(.invalidConfiguration, "--parameter-overrides: \"\(argument)\" is not Key=Value")
                }
                overrides[pair[0]] = pair[1]
            }
        }
        return overrides
    }

    /// One pass over the template: keeps the file for errors and what it found so far.
    private struct Reader {
        let file: URL
        let root: TemplateNode
        let overrides: [String: String]
        let stateDirectory: URL
        var resolver = TemplateResolver(parameters: [:], conditions: [:], resources: [:])
        var functions: [FunctionConfiguration] = []
        var routes: [APIRoute] = []
        var notEmulated: [String] = []
        /// Per property not read, the functions that have it.
        var ignoredProperties: [String: [String]] = [:]

        init(file: URL, root: TemplateNode, overrides: [String: String], stateDirectory: URL) {
            self.file = file
            self.root = root
            self.overrides = overrides
            self.stateDirectory = stateDirectory
        }

        private var folder: URL { file.deletingLastPathComponent() }

        func failure(_ line: Int, _ place: String, _ message: String) -> RuntimeError {
            RuntimeError(.invalidConfiguration, "\(file.path):\(line): \(place): \(message)")
        }

        mutating func read() throws(RuntimeError) {
            guard let resources = root["Resources"], case .map(let entries) = resources.value else {
                throw failure(root.line, "Resources", "a template needs a Resources map")
            }
            resolver.parameters = try parameters()
            resolver.conditions = Dictionary(root["Conditions"]?.pairs.map { ($0.key, $0.value) } ?? [], uniquingKeysWith: { a, _ in a })
            resolver.resources = Dictionary(entries.map { ($0.key, $0.value["Type"]?.scalar ?? "") }, uniquingKeysWith: { a, _ in a })
            resolver.mappings = root["Mappings"]

            var otherTypes: [String: [String]] = [:]
            for (id, resource) in entries {
                let type = resource["Type"]?.scalar ?? ""
                if let condition = resource["Condition"]?.scalar {
                    do {
                        if try !resolver.condition(condition, line: resource.line) { continue }
                    } catch {
                        throw failure(error.line, "Resources.\(id).Condition", error.message)
                    }
                }
                switch type {
                case "AWS::Serverless::Function", "AWS::Lambda::Function":
                    if let function = try function(id, resource, serverless: type == "AWS::Serverless::Function") { functions.append(function) }
                case "AWS::Lambda::Url", "AWS::Lambda::EventInvokeConfig":
                    continue  // applied to their functions below, once every function is read
                default:
                    otherTypes[type, default: []].append(id)
                }
            }
            for (id, resource) in entries {
                switch resource["Type"]?.scalar {
                case "AWS::Lambda::Url": try applyURL(id, resource)
                case "AWS::Lambda::EventInvokeConfig": try applyEventInvokeConfig(id, resource)
                default: continue
                }
            }

            for (type, ids) in otherTypes.sorted(by: { $0.key < $1.key }) {
                notEmulated.append("resources of type \(type) (\(ids.joined(separator: ", ")))")
            }
            for (property, ids) in ignoredProperties.sorted(by: { $0.key < $1.key }) {
                notEmulated.append("function property \(property) (\(ids.joined(separator: ", ")))")
            }
            for section in ["Outputs", "Metadata"] where root[section] != nil {
                let names = root[section]?.pairs.map(\.key).joined(separator: ", ") ?? ""
                notEmulated.append("\(section)\(names.isEmpty ? "" : " (\(names))")")
            }
            for (section, _) in root["Globals"]?.pairs ?? [] where section != "Function" {
                notEmulated.append("Globals.\(section)")
            }
        }

        private func parameters() throws(RuntimeError) -> [String: TemplateResolver.Parameter] {
            var values: [String: TemplateResolver.Parameter] = [:]
            for (name, declaration) in root["Parameters"]?.pairs ?? [] {
                let type = declaration["Type"]?.scalar ?? "String"
                guard let text = overrides[name] ?? declaration["Default"].flatMap(Self.plainText) else {
                    values[name] = .missing(type: type)
                    continue
                }
                if case .list(let allowed) = declaration["AllowedValues"]?.value, !allowed.compactMap(\.scalar).contains(text) {
                    throw failure(
                        declaration.line, "Parameters.\(name)",
                        "\"\(text)\" is not one of its AllowedValues (\(allowed.compactMap(\.scalar).joined(separator: ", ")))")
                }
                let isList = type == "CommaDelimitedList" || type.hasPrefix("List<")
                values[name] = isList ? .list(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) : .text(text)
            }
            return values
        }

        /// A default as written: a scalar, or a list joined as CloudFormation joins a list default.
        private static func plainText(_ node: TemplateNode) -> String? {
            switch node.value {
            case .scalar(let text): return text
            case .list(let items): return items.compactMap(\.scalar).joined(separator: ",")
            default: return nil
            }
        }

        /// The function's properties with `Globals.Function` under them: maps merge, lists add up,
        /// a value of the function's own wins (SAM's rules).
        private func properties(of resource: TemplateNode, serverless: Bool) -> TemplateNode {
            let own = resource["Properties"] ?? .made(.map([]), line: resource.line)
            guard serverless, let globals = root["Globals"]?["Function"] else { return own }
            return Self.merge(globals, under: own)
        }

        private static func merge(_ global: TemplateNode, under own: TemplateNode) -> TemplateNode {
            switch (global.value, own.value) {
            case (.map(let base), .map(let top)):
                var merged = base
                for pair in top {
                    if let index = merged.firstIndex(where: { $0.key == pair.key }) {
                        merged[index] = (pair.key, merge(merged[index].value, under: pair.value))
                    } else {
                        merged.append(pair)
                    }
                }
                return .made(.map(merged), line: own.line)
            case (.list(let base), .list(let top)):
                return .made(.list(base + top), line: own.line)
            default:
                return own
            }
        }

        /// A property resolved; a problem becomes an error naming the resource, the property and the line.
        private func value(_ properties: TemplateNode, _ key: String, of id: String) throws(RuntimeError) -> TemplateNode? {
            guard let node = properties[key] else { return nil }
            do {
                return try resolver.resolve(node)
            } catch {
                throw failure(error.line, "Resources.\(id).Properties.\(key)", error.message)
            }
        }

        private func text(_ properties: TemplateNode, _ key: String, of id: String) throws(RuntimeError) -> String? {
            guard let node = try value(properties, key, of: id) else { return nil }
            switch node.value {
            case .scalar(let text): return text
            case .null: return nil
            default: throw failure(node.line, "Resources.\(id).Properties.\(key)", "must be a single value")
            }
        }

        private func number(_ properties: TemplateNode, _ key: String, of id: String) throws(RuntimeError) -> Double? {
            guard let text = try text(properties, key, of: id) else { return nil }
            guard let number = Double(text) else {
                throw failure(properties[key]?.line ?? 0, "Resources.\(id).Properties.\(key)", "\"\(text)\" is not a number")
            }
            return number
        }

        private mutating func function(_ id: String, _ resource: TemplateNode, serverless: Bool) throws(RuntimeError) -> FunctionConfiguration? {
            let properties = properties(of: resource, serverless: serverless)
            for (key, _) in properties.pairs where !LambdaTemplate.readProperties.contains(key) {
                ignoredProperties[key, default: []].append(id)
            }
            if try text(properties, "PackageType", of: id) == "Image" {
                notEmulated.append("function \(id): PackageType Image (container images need Docker)")
                return nil
            }
            guard let runtime = try text(properties, "Runtime", of: id) else {
                throw failure(properties.line, "Resources.\(id).Properties.Runtime", "a function needs a Runtime")
            }
            let handler = try text(properties, "Handler", of: id)
            let code = try codeLocation(id, resource, properties, serverless: serverless)
            let start: Start
            switch try self.start(id, runtime: runtime, handler: handler, code: code, line: properties["Runtime"]?.line ?? properties.line) {
            case .some(let found): start = found
            case .none:
                notEmulated.append("function \(id): Runtime \(runtime) (runs here: provided.al2023, provided.al2, python3.x, nodejs18.x/20.x/22.x)")
                return nil
            }

            var function = FunctionConfiguration(
                name: id, runtime: runtime, handler: handler ?? "bootstrap", swiftProduct: start.swiftProduct, command: start.command,
                timeout: try number(properties, "Timeout", of: id) ?? 3, memorySize: Int(try number(properties, "MemorySize", of: id) ?? 128),
                reservedConcurrency: try number(properties, "ReservedConcurrentExecutions", of: id).map { Int($0) },
                environment: try environment(properties, of: id), directory: start.directory
            )
            function.swiftPackage = start.swiftPackage
            function.archive = start.archive
            function.description = try text(properties, "Description", of: id)
            if let architectures = try value(properties, "Architectures", of: id), case .list(let items) = architectures.value {
                function.architectures = items.compactMap(\.scalar)
            }
            if let retries = try value(properties, "EventInvokeConfig", of: id)?["MaximumRetryAttempts"]?.scalar {
                guard let count = Int(retries) else {
                    throw failure(properties.line, "Resources.\(id).Properties.EventInvokeConfig.MaximumRetryAttempts", "\"\(retries)\" is not a number")
                }
                function.maximumRetryAttempts = count
            }
            if let logging = try value(properties, "LoggingConfig", of: id) {
                function.loggingConfig = try loggingConfig(logging, of: id)
            }
            if let url = try value(properties, "FunctionUrlConfig", of: id) {
                function.url = try urlConfig(url, place: "Resources.\(id).Properties.FunctionUrlConfig")
            }
            if let events = try value(properties, "Events", of: id) {
                try readEvents(events, of: id)
            }
            do {
                try function.validate()
            } catch {
                throw failure(properties.line, "Resources.\(id)", error.message)
            }
            return function
        }

        private func environment(_ properties: TemplateNode, of id: String) throws(RuntimeError) -> [String: String] {
            guard let variables = try value(properties, "Environment", of: id)?["Variables"] else { return [:] }
            var environment: [String: String] = [:]
            for (key, node) in variables.pairs {
                switch node.value {
                case .scalar(let text): environment[key] = text
                case .null: environment[key] = ""
                default: throw failure(node.line, "Resources.\(id).Properties.Environment.Variables.\(key)", "must be a single value")
                }
            }
            return environment
        }

        private enum Code {
            case folder(URL)
            case archive(URL)
            case inline(String)

            /// Where the code is on disk (none for inline code).
            var path: URL? {
                switch self {
                case .folder(let url), .archive(let url): url
                case .inline: nil
                }
            }
        }

        private func codeLocation(_ id: String, _ resource: TemplateNode, _ properties: TemplateNode, serverless: Bool) throws(RuntimeError) -> Code {
            if serverless {
                if let inline = try text(properties, "InlineCode", of: id) { return .inline(inline) }
                guard let node = try value(properties, "CodeUri", of: id) else { return .folder(folder) }
                guard case .scalar(let path) = node.value, !path.hasPrefix("s3://") else {
                    throw failure(node.line, "Resources.\(id).Properties.CodeUri", "code in S3 is not emulated: point CodeUri at the function's folder or .zip")
                }
                return location(path)
            }
            guard let code = try value(properties, "Code", of: id) else {
                throw failure(properties.line, "Resources.\(id).Properties.Code", "an AWS::Lambda::Function needs Code")
            }
            if let inline = code["ZipFile"]?.scalar { return .inline(inline) }
            // CDK's synthesized templates point at the asset folder in the resource's metadata.
            if let asset = resource["Metadata"]?["aws:asset:path"]?.scalar { return location(asset) }
            throw failure(code.line, "Resources.\(id).Properties.Code", "code in S3 or ECR is not emulated: use Code.ZipFile or a CDK asset (Metadata aws:asset:path)")
        }

        private func location(_ path: String) -> Code {
            let url = URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
            return url.pathExtension.lowercased() == "zip" ? .archive(url) : .folder(url)
        }

        /// How a function starts.
        private struct Start {
            var directory: URL
            var command: [String]?
            var swiftProduct: String?
            var swiftPackage: URL?
            var archive: URL?
        }

        /// The start of a function of `runtime`; nil when the runtime does not run here.
        private func start(_ id: String, runtime: String, handler: String?, code: Code, line: Int) throws(RuntimeError) -> Start? {
            // swift-aws-lambda-runtime's packager output (its .zip or the folder beside it): run the
            // product, built with `swift build`.
            if let (package, product) = code.path.flatMap(Self.packagedSwiftProduct) {
                return Start(directory: package, swiftProduct: product, swiftPackage: package)
            }
            var directory: URL
            var archive: URL?
            switch code {
            case .folder(let url):
                directory = url
            case .archive(let url):
                directory = stateDirectory.appendingPathComponent("unpacked/\(id)", isDirectory: true)
                archive = url
            case .inline(let source):
                directory = stateDirectory.appendingPathComponent("inline/\(id)", isDirectory: true)
                let name = runtime.hasPrefix("python") ? "index.py" : runtime.hasPrefix("nodejs") ? "index.js" : "bootstrap"
                do {
                    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                    try Data(source.utf8).write(to: directory.appendingPathComponent(name))
                } catch {
                    throw failure(line, "Resources.\(id)", "cannot write its inline code to \(directory.path): \(error.localizedDescription)")
                }
            }
            if archive == nil, !FileManager.default.fileExists(atPath: directory.path) {
                throw failure(line, "Resources.\(id).Properties.CodeUri", "\(directory.path) does not exist")
            }
            if runtime.hasPrefix("provided") {
                if archive == nil, !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("bootstrap").path) {
                    throw failure(line, "Resources.\(id).Properties.CodeUri", "\(directory.path) has no executable bootstrap (a \(runtime) function starts from one)")
                }
                return Start(directory: directory, command: ["./bootstrap"], archive: archive)
            }
            if let command = HandlerRuntime.command(runtime: runtime, handler: handler ?? "", in: directory) {
                return Start(directory: directory, command: command, archive: archive)
            }
            return nil
        }

        /// `…/.build/plugins/AWSLambdaPackager/outputs/AWSLambdaPackager/<Product>/<Product>.zip` (or the
        /// folder beside it): the package and the product.
        static func packagedSwiftProduct(_ url: URL) -> (URL, String)? {
            let components = url.pathComponents
            guard let build = components.firstIndex(of: ".build"),
                let outputs = components.lastIndex(of: "AWSLambdaPackager"), outputs > build, outputs + 1 < components.count
            else { return nil }
            let package = URL(fileURLWithPath: NSString.path(withComponents: Array(components[..<build])), isDirectory: true)
            return (package, components[outputs + 1])
        }

        private func loggingConfig(_ node: TemplateNode, of id: String) throws(RuntimeError) -> FunctionLoggingConfig {
            let place = "Resources.\(id).Properties.LoggingConfig"
            var config = FunctionLoggingConfig()
            if let format = node["LogFormat"]?.scalar {
                guard let value = FunctionLoggingConfig.LogFormat(rawValue: format) else { throw failure(node.line, place, "LogFormat is Text or JSON") }
                config.logFormat = value
            }
            if let level = node["ApplicationLogLevel"]?.scalar {
                guard let value = FunctionLoggingConfig.Level(rawValue: level) else { throw failure(node.line, place, "ApplicationLogLevel \(level) is not a level") }
                config.applicationLogLevel = value
            }
            if let level = node["SystemLogLevel"]?.scalar {
                guard let value = FunctionLoggingConfig.Level(rawValue: level) else { throw failure(node.line, place, "SystemLogLevel \(level) is not a level") }
                config.systemLogLevel = value
            }
            return config
        }

        private func urlConfig(_ node: TemplateNode, place: String) throws(RuntimeError) -> FunctionURLConfig {
            var config = FunctionURLConfig()
            if let mode = node["InvokeMode"]?.scalar {
                guard let value = FunctionURLConfig.InvokeMode(rawValue: mode) else {
                    throw failure(node.line, place, "InvokeMode is BUFFERED or RESPONSE_STREAM")
                }
                config.invokeMode = value
            }
            config.authType = node["AuthType"]?.scalar ?? "NONE"
            if let cors = node["Cors"] {
                func list(_ key: String) -> [String]? {
                    guard case .list(let items) = cors[key]?.value else { return nil }
                    return items.compactMap(\.scalar)
                }
                config.cors = FunctionURLConfig.Cors(
                    allowOrigins: list("AllowOrigins"), allowMethods: list("AllowMethods"), allowHeaders: list("AllowHeaders"),
                    exposeHeaders: list("ExposeHeaders"), maxAge: cors["MaxAge"]?.scalar.flatMap { Int($0) },
                    allowCredentials: cors["AllowCredentials"]?.scalar.map { $0 == "true" }
                )
            }
            return config
        }

        private mutating func readEvents(_ events: TemplateNode, of id: String) throws(RuntimeError) {
            var other: [String] = []
            for (name, event) in events.pairs {
                let type = event["Type"]?.scalar ?? ""
                guard let kind = APIRoute.Kind(rawValue: type) else {
                    other.append("\(name) (\(type))")
                    continue
                }
                let place = "Resources.\(id).Properties.Events.\(name)"
                let properties = event["Properties"]
                // An HttpApi event without Path and Method is the API's catch-all route ($default).
                let path = properties?["Path"]?.scalar ?? (kind == .http ? "/{proxy+}" : "")
                let method = (properties?["Method"]?.scalar ?? (kind == .http ? "ANY" : "")).uppercased()
                guard path.hasPrefix("/"), !method.isEmpty else { throw failure(event.line, place, "an \(type) event needs Path and Method") }
                let format = kind == .rest ? "1.0" : properties?["PayloadFormatVersion"]?.scalar ?? "2.0"
                guard format == "1.0" || format == "2.0" else { throw failure(event.line, place, "PayloadFormatVersion is 1.0 or 2.0") }
                routes.append(APIRoute(kind: kind, method: method == "X-AMAZON-APIGATEWAY-ANY-METHOD" ? "ANY" : method, path: path, function: id, payloadFormat: format))
            }
            if !other.isEmpty { notEmulated.append("function \(id): event sources \(other.joined(separator: ", "))") }
        }

        /// The function a `TargetFunctionArn` or `FunctionName` names: `!Ref F` (its name), `!GetAtt F.Arn`
        /// or an ARN (its last part), or the name, as the resolver gives them.
        private func targetFunction(_ node: TemplateNode?, place: String, line: Int) throws(RuntimeError) -> Int {
            var name: String?
            if let node {
                do {
                    name = try resolver.text(node, what: place)?.split(separator: ":").last.map(String.init)
                } catch {
                    throw failure(error.line, place, error.message)
                }
            }
            guard let name, let index = functions.firstIndex(where: { $0.name == name }) else {
                throw failure(node?.line ?? line, place, "names no function of this template")
            }
            return index
        }

        private mutating func applyURL(_ id: String, _ resource: TemplateNode) throws(RuntimeError) {
            let properties = resource["Properties"] ?? .made(.map([]), line: resource.line)
            let index = try targetFunction(properties["TargetFunctionArn"], place: "Resources.\(id).Properties.TargetFunctionArn", line: resource.line)
            let resolved: TemplateNode
            do {
                resolved = try resolver.resolve(properties) ?? properties
            } catch {
                throw failure(error.line, "Resources.\(id).Properties", error.message)
            }
            functions[index].url = try urlConfig(resolved, place: "Resources.\(id).Properties")
        }

        private mutating func applyEventInvokeConfig(_ id: String, _ resource: TemplateNode) throws(RuntimeError) {
            let properties = resource["Properties"] ?? .made(.map([]), line: resource.line)
            let index = try targetFunction(properties["FunctionName"], place: "Resources.\(id).Properties.FunctionName", line: resource.line)
            if let retries = properties["MaximumRetryAttempts"]?.scalar.flatMap({ Int($0) }) {
                functions[index].maximumRetryAttempts = retries
            }
        }
    }
}
