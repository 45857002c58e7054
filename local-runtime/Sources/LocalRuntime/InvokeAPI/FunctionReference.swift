import Foundation

/// A function as the Lambda API names it: a name, a full or partial ARN, any of them with `:qualifier`,
/// plus the `Qualifier` parameter. It resolves the way AWS does, to a function at `$LATEST` (the only
/// version here) or to the error AWS gives for that form.
public struct FunctionReference: Sendable, Equatable {
    /// The function's name, without ARN parts or qualifier.
    public var name: String
    /// The qualifier from the name or the `Qualifier` parameter (they must agree), if any.
    public var qualifier: String?

    /// `NamespacedFunctionName`'s pattern in the Lambda API model, quoted in `ValidationException`s.
    static let awsNamePattern =
        #"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"#
    /// `Qualifier`'s pattern in the Lambda API model.
    static let awsQualifierPattern = #"(|[a-zA-Z0-9$_-]+)"#

    // The same language as `awsNamePattern`, with a hyphen written last in each class (where every
    // regex dialect reads it literally) and the parts captured by name.
    nonisolated(unsafe) private static let nameRegex = #/(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?<region>(?:eusc-)?[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]:)?(?<account>[0-9]{12}:)?(?:function:)?(?<name>[a-zA-Z0-9_.-]+)(?::(?<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]+))?/#
    nonisolated(unsafe) private static let qualifierRegex = #/[a-zA-Z0-9$_-]+/#

    /// Parses `raw` (the path's `FunctionName`, percent-decoded) with the `Qualifier` parameter and checks
    /// it against this emulator's one region and account, in the order AWS reports problems.
    ///
    /// - Throws: `ValidationException` for a malformed name or qualifier, `ResourceNotFoundException` for
    ///   an ARN of another region, `AccessDeniedException` for another account's function (nothing grants
    ///   this account access to it), `InvalidParameterValueException` when the name's qualifier and the
    ///   parameter differ.
    public init(parsing raw: String, qualifier parameter: String?, action: String) throws(RuntimeError) {
        guard raw.count <= 256 else { throw Self.validation(raw, field: "functionName", "Member must have length less than or equal to 256") }
        guard let match = raw.wholeMatch(of: Self.nameRegex) else {
            throw Self.validation(raw, field: "functionName", "Member must satisfy regular expression pattern: \(Self.awsNamePattern)")
        }
        let name = String(match.output.name)
        let region = match.output.region.map { String($0.dropLast()) }
        let account = match.output.account.map { String($0.dropLast()) }
        // Only a name on its own is held to a function name's length; the ARN forms to the whole's.
        if region == nil, account == nil, !raw.hasPrefix("arn:"), name.count > 64 {
            throw Self.validation(raw, field: "functionName", "Member must have length less than or equal to 64")
        }
        if let region, region != RuntimeConfiguration.region {
            throw RuntimeError(.functionNotFound, "Functions from '\(region)' are not reachable in this region ('\(RuntimeConfiguration.region)')")
        }
        if let account, account != RuntimeConfiguration.account {
            let resource = "arn:aws:lambda:\(region ?? RuntimeConfiguration.region):\(account):function:\(name)"
            throw RuntimeError(
                .accessDenied,
                "User: arn:aws:iam::\(RuntimeConfiguration.account):root is not authorized to perform: lambda:\(action) on resource: \(resource) because no resource-based policy allows the lambda:\(action) action"
            )
        }
        if let parameter {
            guard parameter.count <= 128 else { throw Self.validation(parameter, field: "qualifier", "Member must have length less than or equal to 128") }
            guard parameter.isEmpty || parameter.wholeMatch(of: Self.qualifierRegex) != nil else {
                throw Self.validation(parameter, field: "qualifier", "Member must satisfy regular expression pattern: \(Self.awsQualifierPattern)")
            }
        }
        let derived = match.output.qualifier.map(String.init)
        let given = parameter.flatMap { $0.isEmpty ? nil : $0 }
        if let derived, let given, derived != given {
            throw RuntimeError(.invalidParameter, "The derived qualifier from the function name does not match the specified qualifier.")
        }
        self.name = name
        self.qualifier = derived ?? given
    }

    /// The function's ARN as AWS quotes it in errors, qualified when a qualifier was given.
    public var arn: String {
        RuntimeConfiguration.arn(name) + (qualifier.map { ":\($0)" } ?? "")
    }

    /// The configuration this names: functions exist only at `$LATEST`, so any other version or alias
    /// is `ResourceNotFoundException` with the qualified ARN, as AWS answers for one that was never published.
    public func resolve(in registry: FunctionRegistry) throws(RuntimeError) -> FunctionConfiguration {
        guard qualifier == nil || qualifier == "$LATEST", let function = registry.function(named: name) else {
            throw RuntimeError(.functionNotFound, "Function not found: \(arn)")
        }
        return function
    }

    /// AWS's message for a parameter that fails its model's constraint.
    private static func validation(_ value: String, field: String, _ constraint: String) -> RuntimeError {
        RuntimeError(.validation, "1 validation error detected: Value '\(value)' at '\(field)' failed to satisfy constraint: \(constraint)")
    }
}
