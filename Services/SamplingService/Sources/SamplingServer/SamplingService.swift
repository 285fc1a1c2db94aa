import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SCM
import ServiceLifecycle

/// The HTTP sampling service: `POST /v1/samples`, `GET /v1/models`, `GET /healthz`, `GET /readyz`,
/// `GET /metrics` (and HEAD of the GET endpoints but /metrics). Models are loaded and every plan compiled before the port opens; SIGTERM or
/// SIGINT stops accepting connections, lets the requests in flight finish, and returns.
public enum SamplingService {
    /// Loads the models and compiles their plans (the slow part: before the server binds).
    public static func prepare(_ c: ServerConfiguration, logger: Logger, metrics: ServiceMetrics = ServiceMetrics()) throws -> (ModelRegistry, ServiceMetrics) {
        let start = ContinuousClock.now
        let registry = try ModelRegistry(c, metrics: metrics)
        for s in registry.skipped { logger.notice("skipped \(s)") }
        for u in registry.unavailable { logger.error("unavailable: \(u.path): \(u.reason)") }
        logger.info("loaded \(registry.entries.count) model(s): \(registry.entries.keys.sorted().joined(separator: ", ")); steps \(c.steps), precisions \(c.precisions.map(\.rawValue)); plans compiled in \(ContinuousClock.now - start)")
        return (registry, metrics)
    }

    public static func router(_ registry: ModelRegistry, _ metrics: ServiceMetrics, drain: Drain? = nil) -> Router<ServiceContext> {
        let router = Router(context: ServiceContext.self)
        if registry.configuration.accessLog { router.add(middleware: AccessLog()) }
        if let token = registry.configuration.token { router.add(middleware: BearerToken(token: Array(token.utf8))) }
        let health: @Sendable () -> Response = { json(200, ["status": "ok", "models": registry.entries.count]) }
        let models: @Sendable () -> Response = {
            json(200, ["models": registry.describe(), "unavailable": registry.unavailable.map { ["file": $0.path, "reason": $0.reason] }])
        }
        // Liveness and readiness: the port opens only once every model is loaded and compiled.
        router.get("/healthz") { _, _ in health() }
        router.get("/readyz") { _, _ in
            drain?.isDraining == true ? json(503, ["status": "draining"]) : json(200, ["status": "ready", "models": registry.entries.count])
        }
        router.get("/v1/models") { _, _ in models() }
        // HEAD answers as GET does, without the body.
        for path in ["/healthz", "/readyz", "/v1/models"] {
            router.head(RouterPath(path)) { _, _ in Response(status: .ok, headers: [.contentType: "application/json"]) }
        }
        if registry.configuration.metricsPort == nil { addMetrics(to: router, metrics) }
        router.post("/v1/samples") { request, context in
            let start = ContinuousClock.now
            let response: Response
            do {
                try checkDeclaredLength(request, registry.configuration)
                let gone = try await context.channel.eventLoop.submit { ClientGone.future(of: context.channel) }.get()
                response = try await samples(request, registry, metrics, gone: gone)
            } catch {
                let e = serviceError(error, registry.configuration)
                // Every refusal and failure is logged with Hummingbird's request id (hb.request.id).
                context.logger.log(level: e.status >= 500 ? .error : .notice, "POST /v1/samples: \(e.status) \(e)")
                response = failure(e)
            }
            metrics.responded(Int(response.status.code))
            metrics.requestSeconds.record(ContinuousClock.now - start)
            return response
        }
        return router
    }

    /// `GET /metrics` (Prometheus text) on `router`.
    static func addMetrics<Context: RequestContext>(to router: Router<Context>, _ metrics: ServiceMetrics) {
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.text())))
        }
    }

    /// The server of `/metrics` alone, on its own port (`--metrics-port`), so that the public
    /// port does not expose it.
    static func metricsServer(_ c: ServerConfiguration, port: Int, _ metrics: ServiceMetrics, logger: Logger) -> some Service {
        let router = Router()
        addMetrics(to: router, metrics)
        return Application(router: router, configuration: .init(address: .hostname(c.host, port: port), serverName: "scm-serve-metrics"),
                           onServerRunning: { channel in logger.info("metrics on \(c.host):\(channel.localAddress?.port ?? 0)") },
                           logger: logger)
    }

    static func samples(_ request: Request, _ registry: ModelRegistry, _ metrics: ServiceMetrics,
                        gone: EventLoopFuture<Void>?) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: registry.configuration.maxBodyBytes) } catch {
            if error is NIOTooManyBytesError || (error as? HTTPError)?.status == .contentTooLarge { throw error }
            // The client's fault (it closed mid-body, or sent malformed chunked encoding): a 4xx,
            // without the HTTP parser's internals.
            throw ServiceError(400, field: "body", "could not be read: the connection closed or the HTTP framing is malformed")
        }
        let r = try SampleRequest.parse(Array(buffer: body), registry: registry)
        guard let entry = registry.entries[r.model],
              let batcher = entry.batchers[ModelRegistry.key(steps: r.steps, precision: r.precision)] else {
            throw ServiceError(500, "no sampler for \(r.model) at \(r.steps) steps, \(r.precision.rawValue)")
        }
        let served = try await batcher.submit(seed: r.seed, count: r.count, gone: gone)
        metrics.samples.increment(by: Int64(r.count))
        let bytes: [UInt8], type: String
        switch r.format {
        case .npy:
            bytes = served.samples.npy()
            type = "application/x-npy"
        case .png:
            bytes = [UInt8](try served.samples.png(nrow: r.nrow))
            type = "image/png"
        }
        var headers: HTTPFields = [.contentType: type]
        headers[HTTPField.Name("X-SCM-Batch-Samples")!] = String(served.batchSamples)
        headers[HTTPField.Name("X-SCM-Batch-Requests")!] = String(served.batchRequests)
        headers[HTTPField.Name("X-SCM-Queued-Ms")!] = String(format: "%.1f", served.queued.seconds * 1000)
        headers[HTTPField.Name("X-SCM-Batch-Ms")!] = String(format: "%.1f", served.ran.seconds * 1000)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A declared body length past the limit is refused before any of the body is read, and the
    /// connection closed (the body is never drained).
    static func checkDeclaredLength(_ request: Request, _ c: ServerConfiguration) throws {
        guard let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > c.maxBodyBytes else { return }
        var e = ServiceError(413, field: "body", "declares \(declared) bytes, more than \(c.maxBodyBytes)")
        e.closesConnection = true
        throw e
    }

    /// What the client is told for `error`: the service's own errors as they are, a body past the
    /// limit as 413, anything else as 500.
    static func serviceError(_ error: any Error, _ c: ServerConfiguration) -> ServiceError {
        if let e = error as? ServiceError { return e }
        if error is NIOTooManyBytesError || (error as? HTTPError)?.status == .contentTooLarge {
            return ServiceError(413, field: "body", "is larger than \(c.maxBodyBytes) bytes")
        }
        return ServiceError(500, "\(error)")
    }

    static func json(_ status: Int, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func failure(_ e: ServiceError) -> Response {
        var error: [String: Any] = ["message": e.message]
        if let f = e.field { error["field"] = f }
        var response = json(e.status, ["error": error])
        if let s = e.retryAfter { response.headers[.retryAfter] = String(s) }
        if e.closesConnection { response.headers[.connection] = "close" }
        return response
    }

    /// Descriptors kept for what is not a client connection: the listening sockets, the event
    /// loops, log and metrics files, a model folder read lazily.
    static let reservedDescriptors = 32

    /// The connection cap: `maxConnections`, lowered (with a log line) to what the process's
    /// descriptor limit leaves, so that accepting never runs out of descriptors.
    static func connectionCap(_ c: ServerConfiguration, logger: Logger) -> Int {
        #if os(Linux)
        let descriptors = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let descriptors = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(descriptors, &limit) == 0, limit.rlim_cur < rlim_t(Int.max),
              c.maxConnections > Int(limit.rlim_cur) - reservedDescriptors else { return c.maxConnections }
        let cap = max(1, Int(limit.rlim_cur) - reservedDescriptors)
        logger.notice("at most \(cap) connections, not \(c.maxConnections): the descriptor limit (ulimit -n) is \(limit.rlim_cur)")
        return cap
    }

    /// The HTTP/1 server: a connection with no request in flight and nothing read for the idle
    /// timeout is closed (idle keep-alives, connections that never send, heads that stop
    /// arriving), and so is a request whose head or body takes longer than its timeout (slow
    /// clients); behind TLS when a certificate and key are configured.
    static func httpServer(_ c: ServerConfiguration, connections: Connections) throws -> HTTPServerBuilder {
        let http = HTTPServerBuilder.http1(configuration: .init(
            additionalChannelHandlers: [ClientGone(), RequestTimeouts(header: c.headerTimeout, body: c.bodyTimeout, connections: connections)],
            idleTimeout: TimeAmount(c.idleTimeout)))
        return try .serving(http, tls: c.tls)
    }

    /// Serves until SIGTERM/SIGINT (then drains in-flight requests and returns).
    public static func run(_ c: ServerConfiguration, logger: Logger) async throws {
        let metrics = ServiceMetrics()
        let connections = Connections(metrics: metrics)
        // The TLS files are read now, before the slow part.
        let server = try httpServer(c, connections: connections)
        let (registry, _) = try prepare(c, logger: logger, metrics: metrics)
        let portFile = c.portFile
        let drain = Drain(seconds: c.drainPeriod)
        let app = Application(
            router: router(registry, metrics, drain: drain),
            server: server,
            // At most maxConnections open at once (fewer if the descriptor limit says so): when the
            // last place is taken an idle connection is closed for the next (`Connections`); with
            // none idle the server stops accepting until one closes, so descriptors never run out.
            configuration: .init(address: .hostname(c.host, port: c.port), serverName: "scm-serve",
                                 availableConnectionsDelegate: ConnectionCap(cap: connectionCap(c, logger: logger), connections: connections)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("listening on \(c.tls == nil ? "http" : "https")://\(c.host):\(port)")
                if let f = portFile {
                    // Written whole, then renamed: a reader never sees a partial number.
                    let tmp = f + ".tmp"
                    if FileManager.default.createFile(atPath: tmp, contents: Data("\(port)\n".utf8)), rename(tmp, f) == 0 {
                        return
                    }
                    logger.error("could not write the port to \(f)")
                }
            },
            logger: logger
        )
        // Shut down in reverse order: the drain first (not ready, still serving), then the server.
        var services: [any Service] = [app, drain]
        if let p = c.metricsPort { services.insert(metricsServer(c, port: p, metrics, logger: logger), at: 0) }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("stopped: in-flight requests answered")
    }
}
