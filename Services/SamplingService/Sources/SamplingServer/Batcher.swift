import Foundation
import NIOCore
import SCM

/// Dynamic batching for one sampler (one model, step count and precision): requests that arrive
/// while others wait are drawn as one batch of up to `maxBatch` samples, each request's samples
/// with its own noise keys (seed, 0..<count), so by the sampler's batch invariance every response
/// is bitwise what the request alone would get. A full batch leaves at once; otherwise the batch
/// leaves `batchWait` after its first request arrived, but while fewer requests wait than the
/// previous batch answered, not before `refillWait` after that batch finished: under load, the
/// clients answered by one batch send their next requests within some milliseconds of its end,
/// and without that second bound the few that arrived while it ran leave as a small batch and
/// the clients split into two half batches taking turns (measured at 64 one-sample clients: 38
/// samples per batch on average, 0.56 of `scm-run`'s batch-64 throughput; with the refill bound
/// full batches). A lone client (previous batch: its one request) never waits for it.
///
/// Backpressure: the samples waiting or running are bounded by `queueLimit` (a request that does
/// not fit is refused with 429 at once, nothing queued); a request still waiting when its
/// deadline passes is answered 503 and dropped.
///
/// Cancellation: a request whose client closes the connection while it waits is dropped unrun; a
/// running batch stops between its chunks (the sampler's batches) once every client it answers
/// has gone.
actor Batcher {
    struct Served: Sendable {
        let samples: Samples
        /// Samples and requests of the batch this request ran in.
        let batchSamples: Int
        let batchRequests: Int
        /// Time from arrival to the start of its batch.
        let queued: Duration
        /// How long its batch ran.
        let ran: Duration
    }

    private struct Waiter {
        let id: Int
        let seed: UInt64
        let count: Int
        let arrived: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Served, any Error>
    }

    private let sampler: Sampler
    private let maxBatch: Int, queueLimit: Int, batching: Bool
    private let batchWait: Duration, refillWait: Duration, deadline: Duration
    private let metrics: ServiceMetrics
    private let admission: Admission
    private let label: String
    private let work: DispatchQueue
    private var queue: [Waiter] = []
    /// Samples waiting or running.
    private var held = 0
    private var running = false
    /// When the last batch finished (its responses handed out).
    private var lastFinished: ContinuousClock.Instant?
    /// Requests the last batch answered.
    private var lastRequests = 0
    private var timer: Task<Void, Never>?
    private var nextID = 0
    private var timerFires: ContinuousClock.Instant?
    /// The clients of the running batch still connected.
    private var listening: Listeners?

    init(sampler: Sampler, configuration c: ServerConfiguration, metrics: ServiceMetrics, admission: Admission, label: String) {
        self.admission = admission
        self.sampler = sampler
        maxBatch = c.maxBatch
        queueLimit = c.queueLimit
        batching = c.batching
        batchWait = c.batchWait
        refillWait = c.refillWait
        deadline = c.deadline
        self.metrics = metrics
        self.label = label
        work = DispatchQueue(label: "scm-serve.batcher.\(label)")
    }

    /// Draws `count` samples with noise keyed by `seed`, in whatever batch forms. When `gone`
    /// completes (the client's connection closed) while the request still waits, it is dropped
    /// unrun and its place in the bounds given back.
    func submit(seed: UInt64, count: Int, gone: EventLoopFuture<Void>? = nil) async throws -> Served {
        guard held + count <= queueLimit else {
            metrics.rejected.increment()
            // Back when enough of this queue's samples are done, at the rate batches run.
            throw ServiceError(429, "the queue of \(label) holds \(held) of \(queueLimit) samples; \(count) more do not fit",
                               retryAfter: admission.retryAfter(work(held + count - queueLimit)))
        }
        // A request that cannot finish within its deadline at the rate batches run is refused now.
        let limit = deadline.seconds
        if let eta = admission.secondsToFinish(work(count)), eta > limit {
            metrics.expired.increment()
            throw ServiceError(503, "would finish in about \(String(format: "%.1f", eta)) s at the current rate, past the deadline of \(deadline)",
                               retryAfter: min(60, max(1, Int((eta - limit).rounded(.up)))))
        }
        do { try admission.admit(work(count), label: label) } catch {
            metrics.rejected.increment()
            throw error
        }
        held += count
        metrics.held.record(Double(held))
        let now = ContinuousClock.now
        nextID += 1
        let id = nextID
        gone?.whenComplete { _ in Task { await self.abandon(id) } }
        return try await withCheckedThrowingContinuation { c in
            queue.append(Waiter(id: id, seed: seed, count: count, arrived: now, deadline: now + deadline, continuation: c))
            schedule()
        }
    }

    /// Drops request `id` if it still waits (its client has gone); a request in the running batch
    /// stops listening to it, which stops the batch once no one listens.
    private func abandon(_ id: Int) {
        guard let i = queue.firstIndex(where: { $0.id == id }) else {
            listening?.leave(id)
            return
        }
        let w = queue.remove(at: i)
        held -= w.count
        admission.release(work(w.count))
        metrics.abandoned.increment()
        metrics.held.record(Double(held))
        w.continuation.resume(throwing: ServiceError(499, "the client closed the connection before its batch ran"))
    }

    /// Drops expired waiters, starts a batch when one is due, else arms the timer for the next
    /// moment one can be due (the first waiter's wait bound, or the earliest deadline).
    private func schedule() {
        let now = ContinuousClock.now
        expire(now)
        guard let first = queue.first else { return }
        if !running {
            let waiting = queue.reduce(0) { $0 + $1.count }
            if !batching || waiting >= maxBatch || now >= due(first) {
                dispatch()
                if queue.isEmpty { return }
            }
        }
        var fire = queue.map(\.deadline).min() ?? now + deadline
        if !running, let f = queue.first { fire = min(fire, due(f)) }
        if let t = timerFires, t <= fire, timer != nil { return }
        timer?.cancel()
        timerFires = fire
        timer = Task { [weak self] in
            try? await Task.sleep(until: fire, clock: .continuous)
            await self?.timerFired()
        }
    }

    /// When a batch led by `first` leaves unless it fills up first.
    private func due(_ first: Waiter) -> ContinuousClock.Instant {
        guard let last = lastFinished, queue.count < lastRequests else { return first.arrived + batchWait }
        return max(first.arrived + batchWait, last + refillWait)
    }

    private func timerFired() {
        timer = nil
        timerFires = nil
        schedule()
    }

    private func expire(_ now: ContinuousClock.Instant) {
        while let i = queue.firstIndex(where: { $0.deadline <= now }) {
            let w = queue.remove(at: i)
            held -= w.count
            admission.release(work(w.count))
            metrics.expired.increment()
            w.continuation.resume(throwing: ServiceError(503, "queued longer than the deadline of \(deadline) before a batch could take it",
                                                         retryAfter: 1))
        }
        metrics.held.record(Double(held))
    }

    /// A request's work in the global bound: its samples times the network evaluations of each.
    private func work(_ count: Int) -> Int { count * sampler.evaluations }

    private func dispatch() {
        var take: [Waiter] = []
        var n = 0
        while let w = queue.first, take.isEmpty || (batching && n + w.count <= maxBatch) {
            take.append(queue.removeFirst())
            n += w.count
        }
        // The deadline covers the run too: a request whose batch would end past it is answered 503
        // now instead of late.
        if let batchSeconds = admission.seconds(of: work(n)) {
            let end = ContinuousClock.now + .milliseconds(Int64(batchSeconds * 1000))
            let late = take.filter { $0.deadline < end }
            take.removeAll { $0.deadline < end }
            for w in late {
                held -= w.count
                n -= w.count
                admission.release(work(w.count))
                metrics.expired.increment()
                w.continuation.resume(throwing: ServiceError(503, "its batch would end past its deadline of \(deadline)", retryAfter: 1))
            }
        }
        guard !take.isEmpty else { return }
        running = true
        let keys = take.flatMap { w in (0..<w.count).map { Sampler.NoiseKey(seed: w.seed, sample: UInt32($0)) } }
        let sampler = self.sampler, metrics = self.metrics
        let started = ContinuousClock.now
        metrics.batchSamples.record(Double(n))
        let batch = take
        let listeners = Listeners(take.map(\.id))
        listening = listeners
        work.async {
            let result = Result { () throws(SamplerError) -> Samples in try sampler.sample(keys: keys) { _, _ in listeners.anyone } }
            metrics.batchSeconds.record(ContinuousClock.now - started)
            Task { await self.finished(batch, result, started: started) }
        }
    }

    private func finished(_ batch: [Waiter], _ result: Result<Samples, SamplerError>, started: ContinuousClock.Instant) {
        running = false
        listening = nil
        lastFinished = ContinuousClock.now
        lastRequests = batch.count
        var first = 0
        let ran = ContinuousClock.now - started
        var stopped = false
        if case .failure(let e) = result, e.kind == .cancelled { stopped = true }
        // A stopped batch ran only part of its work: its time says nothing of the rate.
        admission.release(work(batch.reduce(0) { $0 + $1.count }), ranFor: stopped ? nil : ran.seconds)
        if stopped { metrics.stopped.increment(by: Int64(batch.count)) }
        for w in batch {
            held -= w.count
            metrics.queueSeconds.record(started - w.arrived)
            switch result {
            case .success(let all):
                do {
                    let mine = try all.slice(first..<(first + w.count))
                    w.continuation.resume(returning: Served(samples: mine, batchSamples: all.count, batchRequests: batch.count,
                                                            queued: started - w.arrived, ran: ran))
                } catch {
                    w.continuation.resume(throwing: ServiceError(500, "\(error)"))
                }
            case .failure(let e) where stopped:
                w.continuation.resume(throwing: ServiceError(499, "the client closed the connection; its batch stopped (\(e.message))"))
            case .failure(let e):
                w.continuation.resume(throwing: ServiceError(500, "sampling failed: \(e)"))
            }
            first += w.count
        }
        metrics.held.record(Double(held))
        schedule()
    }
}

/// The requests of a running batch whose clients are still connected, read by the sampler's
/// progress handler between chunks (on the batcher's work queue) and written by the batcher.
final class Listeners: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: Set<Int>

    init(_ ids: [Int]) { self.ids = Set(ids) }

    func leave(_ id: Int) {
        lock.lock()
        ids.remove(id)
        lock.unlock()
    }

    /// Whether any client of the batch is still connected.
    var anyone: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !ids.isEmpty
    }
}
