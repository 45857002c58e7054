import HTTPTypes

extension FunctionURLConfig.Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, or nil when it is not allowed.
    func allowedOrigin(_ origin: String?) -> String? {
        guard let origin, let origins = allowOrigins else { return nil }
        if origins.contains("*") { return allowCredentials == true ? origin : "*" }
        return origins.contains { $0.caseInsensitiveCompare(origin) == .orderedSame } ? origin : nil
    }

    /// Lambda's answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`): the function is
    /// not invoked.
    func preflight(origin: String?) -> HTTPFields {
        var fields = HTTPFields()
        guard let allowed = allowedOrigin(origin) else { return fields }
        fields[.accessControlAllowOrigin] = allowed
        if let allowMethods, !allowMethods.isEmpty { fields[.accessControlAllowMethods] = allowMethods.joined(separator: ",") }
        if let allowHeaders, !allowHeaders.isEmpty { fields[.accessControlAllowHeaders] = allowHeaders.joined(separator: ",") }
        if let maxAge { fields[.accessControlMaxAge] = String(maxAge) }
        if allowCredentials == true { fields[.accessControlAllowCredentials] = "true" }
        if allowed != "*" { fields[.vary] = "Origin" }
        return fields
    }

    /// The CORS fields of an ordinary response; they replace any the function set, as Lambda's do.
    func apply(to fields: inout HTTPFields, origin: String?) {
        for name in [HTTPField.Name.accessControlAllowOrigin, .accessControlAllowCredentials, .accessControlExposeHeaders] {
            fields[name] = nil
        }
        guard let allowed = allowedOrigin(origin) else { return }
        fields[.accessControlAllowOrigin] = allowed
        if let exposeHeaders, !exposeHeaders.isEmpty { fields[.accessControlExposeHeaders] = exposeHeaders.joined(separator: ",") }
        if allowCredentials == true { fields[.accessControlAllowCredentials] = "true" }
        if allowed != "*" { fields[.vary] = "Origin" }
    }
}
