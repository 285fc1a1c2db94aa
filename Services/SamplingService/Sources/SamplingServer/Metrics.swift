import Prometheus

/// The service's Prometheus metrics (`GET /metrics`), in a registry of its own (no global state).
public final class ServiceMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let samples: Counter
    let rejected: Counter
    let expired: Counter
    let abandoned: Counter
    let stopped: Counter
    let evicted: Counter
    let held: Gauge
    let batchSamples: ValueHistogram
    let queueSeconds: DurationHistogram
    let requestSeconds: DurationHistogram
    let batchSeconds: DurationHistogram

    public init() {
        samples = registry.makeCounter(name: "scm_samples_total", help: "Samples drawn and returned")
        rejected = registry.makeCounter(name: "scm_queue_rejected_total", help: "Requests refused with 429: the queue was full")
        expired = registry.makeCounter(name: "scm_deadline_expired_total", help: "Requests answered 503: queued past their deadline")
        abandoned = registry.makeCounter(name: "scm_abandoned_total", help: "Requests dropped unrun: their client closed the connection while they waited")
        stopped = registry.makeCounter(name: "scm_stopped_total", help: "Requests whose running batch stopped between chunks: every client it answered had closed the connection")
        evicted = registry.makeCounter(name: "scm_connections_evicted_total", help: "Idle connections closed at the connection cap to make room for a new one")
        held = registry.makeGauge(name: "scm_queued_samples", help: "Samples waiting or running, last change")
        batchSamples = registry.makeValueHistogram(name: "scm_batch_samples", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
                                                   help: "Samples per batch drawn (several requests coalesced)")
        queueSeconds = registry.makeDurationHistogram(
            name: "scm_queue_seconds", buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(20), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)],
            help: "Time from a request's arrival to the start of its batch")
        requestSeconds = registry.makeDurationHistogram(
            name: "scm_request_seconds", buckets: [.milliseconds(5), .milliseconds(20), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)],
            help: "Time to answer POST /v1/samples")
        batchSeconds = registry.makeDurationHistogram(
            name: "scm_batch_seconds", buckets: [.milliseconds(5), .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500), .seconds(2), .seconds(10)],
            help: "Time to draw one batch (the sampler's call)")
    }

    /// Requests answered, by status code.
    func responded(_ status: Int) {
        registry.makeCounter(name: "scm_requests_total", labels: [("status", String(status))], help: "Requests answered, by status").increment()
    }

    public func text() -> [UInt8] { registry.emitToBuffer() }
}
