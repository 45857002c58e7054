import Foundation
import Yams

/// One value of a SAM or CloudFormation template and the line it starts on, with intrinsic functions
/// (`!Ref X`, `{"Fn::Sub": …}`) kept as such until something reads the value.
struct TemplateNode: Sendable {
    indirect enum Value: Sendable {
        case null
        case scalar(String)
        case list([TemplateNode])
        case map([(key: String, value: TemplateNode)])
        /// `Ref`, `Condition` or `Fn::…`, whichever form it was written in.
        case intrinsic(name: String, argument: TemplateNode)
    }

    var value: Value
    /// 1-based; 0 when the node was made here rather than read.
    var line: Int

    /// The value under `key` of a map.
    subscript(key: String) -> TemplateNode? {
        guard case .map(let pairs) = value else { return nil }
        return pairs.first { $0.key == key }?.value
    }

    /// The pairs of a map (none for anything else).
    var pairs: [(key: String, value: TemplateNode)] {
        if case .map(let pairs) = value { return pairs }
        return []
    }

    /// The text of a scalar.
    var scalar: String? {
        if case .scalar(let text) = value { return text }
        return nil
    }

    /// Parses YAML (CloudFormation's short-form tags included) or JSON.
    static func parse(_ text: String) throws -> TemplateNode {
        guard let root = try Yams.compose(yaml: text) else { return TemplateNode(value: .null, line: 1) }
        return TemplateNode(root)
    }

    private init(value: Value, line: Int) {
        self.value = value
        self.line = line
    }

    /// `!GetAtt`'s tag stands for `Fn::GetAtt`; `!Ref` and `!Condition` keep their names.
    private static func intrinsicName(tag: String) -> String? {
        guard tag.hasPrefix("!"), tag.count > 1, !tag.hasPrefix("!!") else { return nil }
        let name = String(tag.dropFirst())
        return name == "Ref" || name == "Condition" ? name : "Fn::\(name)"
    }

    private init(_ node: Node) {
        let line = node.mark?.line ?? 0
        var plain: Value
        switch node {
        case .scalar(let scalar):
            plain = scalar.tag.rawValue == Tag.Name.null.rawValue && scalar.style == .plain ? .null : .scalar(scalar.string)
        case .sequence(let sequence):
            plain = .list(sequence.map(TemplateNode.init))
        case .mapping(let mapping):
            let pairs = mapping.map { (key: $0.key.string ?? "", value: TemplateNode($0.value)) }
            // The long form: a map whose one key is the function's name.
            if pairs.count == 1, pairs[0].key == "Ref" || pairs[0].key.hasPrefix("Fn::") {
                plain = .intrinsic(name: pairs[0].key, argument: pairs[0].value)
            } else {
                plain = .map(pairs)
            }
        case .alias:
            plain = .null
        }
        if let name = Self.intrinsicName(tag: node.tag.rawValue) {
            // `!Sub` on a scalar, `!If` on a list: the tagged node is the argument.
            plain = .intrinsic(name: name, argument: TemplateNode(value: plain, line: line))
        }
        self.init(value: plain, line: line)
    }

    /// A node made here (a resolved value).
    static func made(_ value: Value, line: Int) -> TemplateNode {
        TemplateNode(value: value, line: line)
    }
}
