/// Size limits shared by the gateway, the functions and the clients, with the real platform's values as defaults.
public enum RelayLimits {
    /// Default chunk size cap: 1 MiB.
    public static let defaultChunkSize = 1 << 20
    /// Largest chunk size cap a gateway accepts: a chunk must fit in one buffered Lambda payload.
    public static let maximumChunkSize = 6 << 20
    /// Smallest chunk size cap a gateway accepts (keeps chunk counts bounded).
    public static let minimumChunkSize = 1 << 10
    /// AWS Lambda's buffered request and response payload limit: 6 MiB plus 100 bytes of framing.
    public static let lambdaBufferedPayload = (6 << 20) + 100
    /// AWS Lambda's asynchronous (`Event`) invocation payload limit: 1 MiB.
    public static let lambdaAsyncEventPayload = 1 << 20
    /// AWS Lambda's streamed response limit: 200 MiB (raised from 20 MiB in 2025).
    public static let lambdaStreamingPayload = 200 << 20
    /// Largest JSON body the gateway reads for a job request or a `complete` manifest.
    public static let maximumJSONBody = 256 << 10
    /// Largest image the gateway will assemble (chunk count times cap is also bounded by this).
    public static let maximumImageBytes: Int64 = 8 << 30
}
