import Foundation

/// One bound over all queues: the work admitted and not yet answered, counted in network
/// evaluations of one sample (a request of `count` samples at `steps` evaluations is count x
/// steps), across every model, step count and precision. A request past it is refused with 429
/// and a Retry-After estimated from the backlog and the rate the batches have been running at.
final class Admission: @unchecked Sendable {
    private let lock = NSLock()
    private let limit: Int
    private var held = 0
    /// Evaluations per second, a moving average over finished batches (nil before the first).
    private var rate: Double?

    init(limit: Int) { self.limit = limit }

    /// Takes `work` out of the bound, or throws the 429 that says when to come back.
    func admit(_ work: Int, label: String) throws {
        lock.lock()
        defer { lock.unlock() }
        guard held + work <= limit else {
            throw ServiceError(429, "the server holds \(held) of \(limit) sample-evaluations of work; \(work) more (\(label)) do not fit",
                               retryAfter: retryAfterLocked(held + work - limit))
        }
        held += work
    }

    /// Gives `work` back once answered (or refused); `seconds`, when the work ran as a batch,
    /// updates the measured rate.
    func release(_ work: Int, ranFor seconds: Double? = nil) {
        lock.lock()
        defer { lock.unlock() }
        held -= work
        if let s = seconds, s > 0 {
            let r = Double(work) / s
            rate = rate.map { 0.8 * $0 + 0.2 * r } ?? r
        }
    }

    /// Seconds to finish `work` more after the backlog held now, at the measured rate (nil
    /// before any batch has run).
    func secondsToFinish(_ work: Int) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        guard let r = rate, r > 0 else { return nil }
        return Double(held + work) / r
    }

    /// Seconds `work` alone takes at the measured rate (nil before any batch has run).
    func seconds(of work: Int) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        guard let r = rate, r > 0 else { return nil }
        return Double(work) / r
    }

    /// Seconds until `excess` evaluations of the backlog are done at the measured rate (1 before
    /// any batch has run), within 1...60: the Retry-After of a 429.
    func retryAfter(_ excess: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return retryAfterLocked(excess)
    }

    private func retryAfterLocked(_ excess: Int) -> Int {
        guard let r = rate, r > 0 else { return 1 }
        return min(60, max(1, Int((Double(excess) / r).rounded(.up))))
    }
}
