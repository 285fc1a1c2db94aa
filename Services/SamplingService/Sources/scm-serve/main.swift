import ArgumentParser
import Foundation
import Logging
import SamplingServer
import SCM

/// `scm-serve --models DIR|FILE ... [--port P]`: the HTTP sampling service (argument parsing,
/// then one library call).
@main
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scm-serve",
        abstract: "Serve TrigFlow models over HTTP: POST /v1/samples, GET /v1/models, /healthz, /metrics.",
        discussion: """
            POST /v1/samples takes JSON {model, steps, count, seed, precision, format: png|npy, nrow} and returns \
            the grid PNG or the .npy bytes, bitwise what `scm-run MODEL --steps S --count C --seed SEED --out` writes. \
            Concurrent requests for the same model, steps and precision are drawn as one batch (up to --max-batch \
            samples, the first waiting at most --batch-wait-ms, or under load up to --refill-wait-ms after the previous \
            batch for its clients to come back). HTTPS with --tls-certificate and --tls-key. SIGTERM/SIGINT: stop \
            accepting, answer the requests in flight, exit 0.
            """)

    @Option(parsing: .upToNextOption, help: "Model files, or folders of *.onnx files (each becomes the model named by its file name).")
    var models: [String]

    @Option(help: "Address to bind (loopback by default).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port, see --port-file).")
    var port = 8080

    @Option(help: "Write the bound port to this file once listening.")
    var portFile: String?

    @Option(help: "Comma-separated step counts to serve (a multistep consistency model is served at its own count, which must be listed).")
    var steps = "1,2,4"

    @Option(help: "Comma-separated precisions to serve (fp32, bf16).")
    var precisions = "fp32,bf16"

    @Option(help: "Worker threads per sampler (default: the machine's cores).")
    var threads: Int?

    @Option(help: "Samples per coalesced batch.")
    var maxBatch = 64

    @Option(help: "How long the first request of a batch waits for others (milliseconds).")
    var batchWaitMs = 5.0

    @Option(help: "While fewer requests wait than the previous batch answered, how long after it finished the next batch waits for them (milliseconds).")
    var refillWaitMs = 20.0

    @Flag(help: "Serve each request alone (no coalescing), for comparison.")
    var noBatching = false

    @Option(help: "Samples waiting or running per model/steps/precision before requests get 429.")
    var queueLimit = 1024

    @Option(help: "The most samples one request may ask for.")
    var maxCount = 256

    @Option(help: "The largest request body in bytes (413 beyond).")
    var maxBodyBytes = 16384

    @Option(help: "Seconds a request may wait in the queue before it gets 503.")
    var deadline = 30.0

    @Option(help: "Seconds a connection may stay open with no request in flight and nothing read (idle keep-alives, clients that never send, headers that stop arriving).")
    var idleTimeout = 30.0

    @Option(help: "Seconds a request's head may take from its first byte (clients that send it slowly are closed).")
    var headerTimeout = 10.0

    @Option(help: "Seconds a request's body may take from the end of its head.")
    var bodyTimeout = 30.0

    @Option(help: "The most connections open at once; beyond it the server stops accepting until one closes (keep it below the descriptor limit, ulimit -n).")
    var maxConnections = 512

    @Option(help: "The work admitted and not yet answered over all models, steps and precisions, in network evaluations of one sample (a request's count x steps); beyond it 429 with a Retry-After from the measured rate.")
    var maxPendingWork = 8192

    @Option(help: "Seconds after SIGTERM/SIGINT during which /readyz answers 503 while requests are still served, before the server stops accepting (for a load balancer to stop sending work).")
    var drainSeconds = 0.0

    @Flag(help: "Compile each sampler's plans when its first batch of a size arrives instead of at start: a quick start and memory for what is used, the first requests slower.")
    var lazyCompile = false

    @Option(help: "Serve /metrics on this port (same address) instead of the main one, so the public port does not expose it.")
    var metricsPort: Int?

    @Option(help: "A file holding the bearer token that /v1/* requests must carry (Authorization: Bearer TOKEN); /healthz, /readyz and /metrics stay open.")
    var tokenFile: String?

    @Option(help: "A PEM file of the server's certificate chain (its own certificate first): serve HTTPS (with --tls-key).")
    var tlsCertificate: String?

    @Option(help: "The PEM file of the certificate's private key (with --tls-certificate).")
    var tlsKey: String?

    @Flag(help: "Log every answered request: method, path, status, body bytes, milliseconds and the client's address, with its request id.")
    var accessLog = false

    @Flag(help: "Stop at start when a file of a --models folder cannot be served (default: log it, list it as unavailable in /v1/models, serve the others).")
    var strictModels = false

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).")
    var logLevel = "info"

    func validate() throws {
        guard !models.isEmpty else { throw ValidationError("--models needs at least one file or folder") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must lie in 0...65535, is \(port)") }
        guard (1...4096).contains(maxBatch) else { throw ValidationError("--max-batch must lie in 1...4096, is \(maxBatch)") }
        guard (1...100_000).contains(maxCount) else { throw ValidationError("--max-count must lie in 1...100000, is \(maxCount)") }
        guard queueLimit >= maxCount else { throw ValidationError("--queue-limit (\(queueLimit)) must be at least --max-count (\(maxCount))") }
        guard batchWaitMs >= 0, batchWaitMs <= 60_000 else { throw ValidationError("--batch-wait-ms must lie in 0...60000, is \(batchWaitMs)") }
        guard refillWaitMs >= 0, refillWaitMs <= 60_000 else { throw ValidationError("--refill-wait-ms must lie in 0...60000, is \(refillWaitMs)") }
        guard deadline > 0, deadline.isFinite else { throw ValidationError("--deadline must be positive, is \(deadline)") }
        guard maxPendingWork >= maxCount * (try parsedSteps().max() ?? 1) else {
            throw ValidationError("--max-pending-work must hold one request of --max-count samples at the most steps (\(maxCount * (try parsedSteps().max() ?? 1))), is \(maxPendingWork)")
        }
        if let p = metricsPort, !(1...65535).contains(p) || p == port { throw ValidationError("--metrics-port must be a port in 1...65535 other than --port, is \(p)") }
        guard drainSeconds >= 0, drainSeconds <= 3600 else { throw ValidationError("--drain-seconds must lie in 0...3600, is \(drainSeconds)") }
        guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must lie in 1...1000000, is \(maxConnections)") }
        for (flag, value) in [("--idle-timeout", idleTimeout), ("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout)] {
            guard value > 0, value <= 86400 else { throw ValidationError("\(flag) must lie in (0, 86400] seconds, is \(value)") }
        }
        guard (64...(1 << 24)).contains(maxBodyBytes) else { throw ValidationError("--max-body-bytes must lie in 64...16777216, is \(maxBodyBytes)") }
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("--tls-certificate and --tls-key go together: give both or neither") }
        if let t = threads, !(1...256).contains(t) { throw ValidationError("--threads must lie in 1...256, is \(t)") }
        _ = try parsedSteps()
        _ = try parsedPrecisions()
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a level") }
    }

    func parsedSteps() throws -> [Int] {
        let s = steps.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !s.isEmpty, s.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 64 }) else {
            throw ValidationError("--steps must be comma-separated counts in 1...64, is '\(steps)'")
        }
        return Array(Set(s.compactMap { $0 })).sorted()
    }

    func parsedPrecisions() throws -> [Precision] {
        let p = precisions.split(separator: ",").map { Precision(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        guard !p.isEmpty, p.allSatisfy({ $0 != nil }) else { throw ValidationError("--precisions must list fp32 and/or bf16, is '\(precisions)'") }
        return Array(Set(p.compactMap { $0 })).sorted { $0.rawValue > $1.rawValue }
    }

    func run() async throws {
        var c = ServerConfiguration(models: models)
        c.host = host
        c.port = port
        c.portFile = portFile
        c.steps = try parsedSteps()
        c.precisions = try parsedPrecisions()
        c.threads = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        c.maxBatch = maxBatch
        c.batchWait = .microseconds(Int64(batchWaitMs * 1000))
        c.refillWait = .microseconds(Int64(refillWaitMs * 1000))
        c.batching = !noBatching
        c.queueLimit = queueLimit
        c.maxCount = maxCount
        c.maxBodyBytes = maxBodyBytes
        c.deadline = .microseconds(Int64(deadline * 1e6))
        c.strictModels = strictModels
        c.maxConnections = maxConnections
        c.maxPendingWork = maxPendingWork
        c.drainPeriod = .microseconds(Int64(drainSeconds * 1e6))
        c.metricsPort = metricsPort
        c.lazyCompile = lazyCompile
        c.accessLog = accessLog
        if let certificate = tlsCertificate, let key = tlsKey { c.tls = .init(certificateChain: certificate, privateKey: key) }
        if let f = tokenFile {
            let token = (try? String(contentsOfFile: f, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard token.count >= 16, !token.contains(where: \.isWhitespace) else {
                FileHandle.standardError.write(Data("scm-serve: error: --token-file: '\(f)' must be a readable file holding one token of at least 16 characters\n".utf8))
                throw ExitCode(1)
            }
            c.token = token
        }
        c.idleTimeout = .microseconds(Int64(idleTimeout * 1e6))
        c.headerTimeout = .microseconds(Int64(headerTimeout * 1e6))
        c.bodyTimeout = .microseconds(Int64(bodyTimeout * 1e6))
        var logger = Logger(label: "scm-serve")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        do {
            try await SamplingService.run(c, logger: logger)
        } catch let e as ServiceError {
            FileHandle.standardError.write(Data("scm-serve: error: \(e)\n".utf8))
            throw ExitCode(1)
        }
    }
}
