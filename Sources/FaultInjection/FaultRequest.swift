/// What the injector knows of a request when it decides its fault.
public struct FaultRequest: Sendable {
    /// Which server took it: `gateway`, or `function-url` (`facts` then name the function).
    public var server: String
    /// Its method.
    public var method: String
    /// Its path, without the query.
    public var path: String
    /// Its `X-ChunkRelay-Fault` header, if any.
    public var header: String?

    /// Makes one.
    public init(server: String, method: String, path: String, header: String?) {
        self.server = server
        self.method = method
        self.path = path
        self.header = header
    }

    /// The job (or function) a request concerns, looked up only when a rule asks.
    public struct Facts: Sendable, Hashable {
        /// The function.
        public var function: String
        /// `retrieve`, `stream` or `direct`.
        public var delivery: String

        /// Makes them.
        public init(function: String, delivery: String) {
            self.function = function
            self.delivery = delivery
        }
    }
}
