import Foundation
import NIOCore
import SCM

/// Everything `scm-serve` is started with.
public struct ServerConfiguration: Sendable {
    /// Model files, or folders whose `*.onnx` files are loaded (each must follow the contract).
    public var models: [String]
    public var host = "127.0.0.1"
    /// 0: any free port (written to `portFile` once bound).
    public var port = 8080
    /// Where to write the bound port (tests start the server on port 0).
    public var portFile: String?
    /// Step counts served (a sampler per model, step count and precision, compiled at start).
    public var steps = [1, 2, 4]
    /// Precisions served: fp32, and bf16 (run as fp32 where the CPU lacks AVX512-BF16).
    public var precisions: [Precision] = [.fp32, .bf16]
    /// Worker threads of each sampler.
    public var threads = 2
    /// Samples per coalesced batch (and the samplers' batch size).
    public var maxBatch = 64
    /// How long the first request of a batch waits for others to join it.
    public var batchWait: Duration = .milliseconds(5)
    /// While fewer requests wait than the previous batch answered, how long after that batch
    /// finished the next one waits for its clients' next requests (see `Batcher`).
    public var refillWait: Duration = .milliseconds(20)
    /// Dynamic batching on; off: each request runs alone (in arrival order).
    public var batching = true
    /// Samples waiting or running per model and step count before requests get 429.
    public var queueLimit = 1024
    /// The most samples one request may ask for.
    public var maxCount = 256
    /// The largest request body accepted (413 beyond).
    public var maxBodyBytes = 16 * 1024
    /// A request still queued after this long gets 503.
    public var deadline: Duration = .seconds(30)
    /// Whether a bad model file in a `models` folder stops the server (else it is listed as
    /// unavailable and the others are served).
    public var strictModels = false
    /// How long a connection may stay open with no request in flight and nothing read.
    public var idleTimeout: Duration = .seconds(30)
    /// How long a request's head may take from its first byte, and its body from the end of its
    /// head (slow clients are closed; see `RequestTimeouts`).
    public var headerTimeout: Duration = .seconds(10)
    public var bodyTimeout: Duration = .seconds(30)
    /// The most connections open at once (the server stops accepting beyond it).
    public var maxConnections = 512
    /// The work admitted and not yet answered, over all queues, in network evaluations of one
    /// sample (count x steps per request); 429 beyond it.
    public var maxPendingWork = 8192
    /// How long /readyz answers 503 after SIGTERM/SIGINT before the server stops accepting.
    public var drainPeriod: Duration = .zero
    /// A port of its own for /metrics (nil: /metrics on the main port).
    public var metricsPort: Int?
    /// Whether plans are compiled by the first batch of each size instead of at start.
    public var lazyCompile = false
    /// The bearer token `/v1/*` requests must carry (nil: no authentication).
    public var token: String?
    /// HTTPS with this certificate and key instead of plain HTTP (nil: HTTP).
    public var tls: TLSFiles?
    /// Whether every answered request is logged (method, path, status, bytes, time, peer).
    public var accessLog = false

    /// PEM files: the server's certificate chain (its own certificate first) and its private key.
    public struct TLSFiles: Sendable {
        public var certificateChain: String
        public var privateKey: String
        public init(certificateChain: String, privateKey: String) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    public init(models: [String]) { self.models = models }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension TimeAmount {
    /// `d` as NIO's time amount (to the nanosecond).
    init(_ d: Duration) { self = .nanoseconds(Int64(d.seconds * 1e9)) }
}

/// A request the service refuses: the HTTP status, the JSON field to blame (if any), a message.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var field: String?
    public var message: String
    /// Seconds for Retry-After (429, 503).
    public var retryAfter: Int?
    /// Whether the connection closes after the response (a body left unread).
    public var closesConnection = false

    public init(_ status: Int, field: String? = nil, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.field = field
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { (field.map { "\($0): " } ?? "") + message }
}
