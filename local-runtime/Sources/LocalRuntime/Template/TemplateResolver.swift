import Foundation

/// Why a template value cannot be resolved, and the line it is on.
struct TemplateProblem: Error, Sendable {
    var line: Int
    var message: String
}

/// Resolves the intrinsic functions that function properties commonly use, as `sam local` resolves them:
/// `Ref` (parameters, pseudo parameters, resources), `Fn::Sub`, `Fn::If` with the template's
/// `Conditions`, `Fn::GetAtt …Arn`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`, `Fn::Base64`.
/// Anything else is a problem naming itself; nothing is guessed.
struct TemplateResolver: Sendable {
    /// A parameter's value: text, or a list (`CommaDelimitedList`, `List<…>`).
    enum Parameter: Sendable {
        case text(String)
        case list([String])
        /// Declared without a default and not overridden: a problem only where it is used.
        case missing(type: String)
    }

    var parameters: [String: Parameter]
    var conditions: [String: TemplateNode]
    /// Logical id to resource type, for `Ref` and `Fn::GetAtt`.
    var resources: [String: String]
    var mappings: TemplateNode?
    var stackName = "local"

    /// `AWS::…` pseudo parameters, with this emulator's region and account.
    private var pseudo: [String: String] {
        [
            "AWS::Region": RuntimeConfiguration.region, "AWS::AccountId": RuntimeConfiguration.account, "AWS::Partition": "aws",
            "AWS::StackName": stackName, "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": "arn:aws:cloudformation:\(RuntimeConfiguration.region):\(RuntimeConfiguration.account):stack/\(stackName)/00000000-0000-0000-0000-000000000000",
        ]
    }

    /// The value with every intrinsic function replaced; nil for `AWS::NoValue` (the property is absent).
    func resolve(_ node: TemplateNode) throws(TemplateProblem) -> TemplateNode? {
        switch node.value {
        case .null, .scalar:
            return node
        case .list(let items):
            var resolved: [TemplateNode] = []
            for item in items { if let value = try resolve(item) { resolved.append(value) } }
            return .made(.list(resolved), line: node.line)
        case .map(let pairs):
            var resolved: [(key: String, value: TemplateNode)] = []
            for pair in pairs { if let value = try resolve(pair.value) { resolved.append((pair.key, value)) } }
            return .made(.map(resolved), line: node.line)
        case .intrinsic(let name, let argument):
            return try intrinsic(name, argument, line: node.line)
        }
    }

    /// A resolved scalar's text (numbers and booleans as written).
    func text(_ node: TemplateNode, what: String) throws(TemplateProblem) -> String? {
        guard let resolved = try resolve(node) else { return nil }
        switch resolved.value {
        case .scalar(let text): return text
        case .null: return nil
        default: throw TemplateProblem(line: node.line, message: "\(what) must be a single value")
        }
    }

    /// Whether condition `name` holds.
    func condition(_ name: String, line: Int) throws(TemplateProblem) -> Bool {
        guard let node = conditions[name] else {
            throw TemplateProblem(line: line, message: "condition \(name) is not in the template's Conditions")
        }
        return try truth(node)
    }

    private func truth(_ node: TemplateNode) throws(TemplateProblem) -> Bool {
        switch node.value {
        case .intrinsic("Condition", let argument):
            return try condition(argument.scalar ?? "", line: node.line)
        case .map(let pairs) where pairs.count == 1 && pairs[0].key == "Condition":
            return try condition(pairs[0].value.scalar ?? "", line: node.line)
        case .intrinsic("Fn::Equals", let argument):
            let operands = try arguments(argument, count: 2, of: "Fn::Equals")
            return try canonical(operands[0]) == canonical(operands[1])
        case .intrinsic("Fn::Not", let argument):
            return try !truth(arguments(argument, count: 1, of: "Fn::Not")[0])
        case .intrinsic("Fn::And", let argument):
            guard case .list(let items) = argument.value else { throw TemplateProblem(line: node.line, message: "Fn::And takes a list") }
            for item in items where try !truth(item) { return false }
            return true
        case .intrinsic("Fn::Or", let argument):
            guard case .list(let items) = argument.value else { throw TemplateProblem(line: node.line, message: "Fn::Or takes a list") }
            for item in items where try truth(item) { return true }
            return false
        case .scalar(let text) where text == "true" || text == "false":
            return text == "true"
        default:
            throw TemplateProblem(line: node.line, message: "a condition must be Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition")
        }
    }

    /// A resolved value as comparable text (lists joined, as CloudFormation compares them).
    private func canonical(_ node: TemplateNode) throws(TemplateProblem) -> String {
        guard let resolved = try resolve(node) else { return "" }
        switch resolved.value {
        case .scalar(let text): return text
        case .list(let items): return items.compactMap(\.scalar).joined(separator: ",")
        default: return ""
        }
    }

    private func arguments(_ node: TemplateNode, count: Int, of function: String) throws(TemplateProblem) -> [TemplateNode] {
        guard case .list(let items) = node.value, items.count == count else {
            throw TemplateProblem(line: node.line, message: "\(function) takes a list of \(count)")
        }
        return items
    }

    private func intrinsic(_ name: String, _ argument: TemplateNode, line: Int) throws(TemplateProblem) -> TemplateNode? {
        func text(_ value: String) -> TemplateNode { .made(.scalar(value), line: line) }
        switch name {
        case "Ref":
            guard let target = argument.scalar else { throw TemplateProblem(line: line, message: "Ref takes a name") }
            if target == "AWS::NoValue" { return nil }
            switch try reference(target, line: line) {
            case .text(let value): return text(value)
            case .list(let values): return .made(.list(values.map(text)), line: line)
            case .missing: return nil
            }
        case "Fn::Sub":
            return text(try substitute(argument, line: line))
        case "Fn::If":
            let operands = try arguments(argument, count: 3, of: "Fn::If")
            guard let condition = operands[0].scalar else { throw TemplateProblem(line: line, message: "Fn::If's first item names a condition") }
            return try resolve(try self.condition(condition, line: line) ? operands[1] : operands[2])
        case "Fn::GetAtt":
            let path: [String]
            switch argument.value {
            case .scalar(let dotted): path = dotted.split(separator: ".", maxSplits: 1).map(String.init)
            case .list(let items):
                var parts: [String] = []
                for item in items { if let part = try self.text(item, what: "Fn::GetAtt's item") { parts.append(part) } }
                path = parts
            default: path = []
            }
            guard path.count == 2 else { throw TemplateProblem(line: line, message: "Fn::GetAtt takes LogicalId.Attribute") }
            return text(try attribute(path[1], of: path[0], line: line))
        case "Fn::Join":
            let operands = try arguments(argument, count: 2, of: "Fn::Join")
            guard let separator = try self.text(operands[0], what: "Fn::Join's delimiter"), let list = try resolve(operands[1]),
                case .list(let items) = list.value
            else { throw TemplateProblem(line: line, message: "Fn::Join takes a delimiter and a list") }
            return text(items.compactMap(\.scalar).joined(separator: separator))
        case "Fn::Select":
            let operands = try arguments(argument, count: 2, of: "Fn::Select")
            guard let index = try self.text(operands[0], what: "Fn::Select's index").flatMap({ Int($0) }), let list = try resolve(operands[1]),
                case .list(let items) = list.value, items.indices.contains(index)
            else { throw TemplateProblem(line: line, message: "Fn::Select's index is not in its list") }
            return items[index]
        case "Fn::Split":
            let operands = try arguments(argument, count: 2, of: "Fn::Split")
            guard let separator = try self.text(operands[0], what: "Fn::Split's delimiter"), !separator.isEmpty,
                let whole = try self.text(operands[1], what: "Fn::Split's text")
            else { throw TemplateProblem(line: line, message: "Fn::Split takes a delimiter and a text") }
            return .made(.list(whole.components(separatedBy: separator).map(text)), line: line)
        case "Fn::FindInMap":
            let operands = try arguments(argument, count: 3, of: "Fn::FindInMap")
            var keys: [String] = []
            for operand in operands {
                guard let key = try self.text(operand, what: "Fn::FindInMap's key") else { throw TemplateProblem(line: line, message: "Fn::FindInMap's key is empty") }
                keys.append(key)
            }
            guard let found = mappings?[keys[0]]?[keys[1]]?[keys[2]] else {
                throw TemplateProblem(line: line, message: "Mappings has no \(keys.joined(separator: "."))")
            }
            return try resolve(found)
        case "Fn::Base64":
            guard let plain = try self.text(argument, what: "Fn::Base64's text") else { return text("") }
            return text(Data(plain.utf8).base64EncodedString())
        default:
            throw TemplateProblem(line: line, message: "\(name) is not supported here (supported: Ref, Fn::Sub, Fn::If, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Base64)")
        }
    }

    /// What `Ref name` gives: a parameter's value, a pseudo parameter, or a resource's name (its logical
    /// id: here a function's name is its logical id, as with `sam local`).
    private func reference(_ name: String, line: Int) throws(TemplateProblem) -> Parameter {
        if let parameter = parameters[name] {
            if case .missing(let type) = parameter {
                throw TemplateProblem(line: line, message: "parameter \(name) (\(type)) has no Default and no --parameter-overrides value")
            }
            return parameter
        }
        if let value = pseudo[name] { return .text(value) }
        if name == "AWS::NotificationARNs" { return .list([]) }
        if resources[name] != nil { return .text(name) }
        throw TemplateProblem(line: line, message: "Ref \(name) names no parameter, pseudo parameter or resource")
    }

    /// `Fn::GetAtt`: a function's `Arn`; another resource's `Arn` is made up in its service's shape,
    /// since nothing here creates it.
    private func attribute(_ attribute: String, of resource: String, line: Int) throws(TemplateProblem) -> String {
        guard let type = resources[resource] else {
            throw TemplateProblem(line: line, message: "Fn::GetAtt \(resource).\(attribute) names no resource")
        }
        guard attribute == "Arn" else {
            throw TemplateProblem(line: line, message: "Fn::GetAtt \(resource).\(attribute): only Arn is supported")
        }
        if type == "AWS::Serverless::Function" || type == "AWS::Lambda::Function" { return RuntimeConfiguration.arn(resource) }
        let service = type.split(separator: "::").dropFirst().first.map { $0.lowercased() } ?? "unknown"
        return "arn:aws:\(service):\(RuntimeConfiguration.region):\(RuntimeConfiguration.account):\(resource)"
    }

    /// `Fn::Sub`: `${Name}`, `${Resource.Arn}` and `${!Literal}`, with an optional map of variables.
    private func substitute(_ argument: TemplateNode, line: Int) throws(TemplateProblem) -> String {
        var template: String
        var variables: [String: String] = [:]
        switch argument.value {
        case .scalar(let text):
            template = text
        case .list(let items) where items.count == 2:
            guard let text = items[0].scalar else { throw TemplateProblem(line: line, message: "Fn::Sub's first item is the text") }
            template = text
            for pair in items[1].pairs { variables[pair.key] = try self.text(pair.value, what: "Fn::Sub's variable \(pair.key)") ?? "" }
        default:
            throw TemplateProblem(line: line, message: "Fn::Sub takes a text, or a text and a map of variables")
        }
        var output = ""
        while let open = template.range(of: "${") {
            output += template[..<open.lowerBound]
            guard let close = template[open.upperBound...].firstIndex(of: "}") else {
                throw TemplateProblem(line: line, message: "Fn::Sub: an unclosed ${ in \"\(template)\"")
            }
            let name = String(template[open.upperBound..<close])
            template = String(template[template.index(after: close)...])
            if name.hasPrefix("!") {
                output += "${\(name.dropFirst())}"
            } else if let value = variables[name] {
                output += value
            } else if let dot = name.firstIndex(of: "."), resources[String(name[..<dot])] != nil {
                output += try attribute(String(name[name.index(after: dot)...]), of: String(name[..<dot]), line: line)
            } else {
                switch try reference(name, line: line) {
                case .text(let value): output += value
                case .list(let values): output += values.joined(separator: ",")
                case .missing: break
                }
            }
        }
        return output + template
    }
}
