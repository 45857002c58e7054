import Foundation
import PostgresNIO

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?search_path=SCHEMA]`, as `serve --store` takes it.
/// With `search_path`, ChunkRelay's tables live in that schema (created if missing), so several
/// emulators can share one database. Loopback and private networks are what an emulator's instances
/// share, so TLS is not negotiated.
struct PostgresURL: Sendable {
    /// The connection settings it names.
    let configuration: PostgresConnection.Configuration
    /// The schema named by `search_path`, if any.
    let schema: String?

    /// What went wrong, in words: postgres-nio's errors print as a generic line unless reflected.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        if let underlying = error.underlying { return "\(underlying)" }
        return "\(error.code)"
    }

    /// The URL with its password masked, for logs.
    static func redacted(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? text
    }

    init(_ text: String) throws(GatewayError) {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
            let host = url.host, !host.isEmpty
        else {
            throw GatewayError(.badRequest, .invalidConfiguration, "--store takes sqlite or postgres://USER@HOST:PORT/DATABASE, got '\(text)'")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty else {
            throw GatewayError(.badRequest, .invalidConfiguration, "\(text) names no database (postgres://USER@HOST:PORT/DATABASE)")
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: url.port ?? 5432, username: url.percentEncodedUser?.removingPercentEncoding ?? "postgres",
            password: url.percentEncodedPassword?.removingPercentEncoding, database: database, tls: .disable
        )
        // A commit returns once PostgreSQL has it, before its WAL reaches the disk: a gateway killed at any
        // point loses nothing, and only a crash of the database server's machine can lose the last
        // commits, the same trade as the SQLite store's `synchronous=NORMAL`, without an fsync per chunk.
        configuration.options.additionalStartupParameters = [("synchronous_commit", "off")]
        let schema = url.queryItems?.first { $0.name == "search_path" }?.value
        if let schema {
            // Written into SQL as an identifier: plain names only.
            guard !schema.isEmpty, schema.count <= 63, schema.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }),
                !(schema.first?.isNumber ?? true)
            else {
                throw GatewayError(.badRequest, .invalidConfiguration, "search_path must be a plain lowercase name (a-z, 0-9, _), got '\(schema)'")
            }
            configuration.options.additionalStartupParameters.append(("search_path", schema))
        }
        self.configuration = configuration
        self.schema = schema
    }
}
