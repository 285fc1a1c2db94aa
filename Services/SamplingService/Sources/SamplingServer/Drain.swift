import Foundation
import ServiceLifecycle

/// The drain before a shutdown: on SIGTERM/SIGINT the server first says it is not ready
/// (`/readyz` 503) for `seconds` while still serving, so that a load balancer stops sending it
/// work, and only then stops accepting connections and answers what is in flight.
public final class Drain: Service, @unchecked Sendable {
    private let lock = NSLock()
    private var draining = false
    let seconds: Duration

    init(seconds: Duration) { self.seconds = seconds }

    var isDraining: Bool {
        lock.lock()
        defer { lock.unlock() }
        return draining
    }

    /// Waits for the graceful shutdown, then marks the drain and holds the shutdown of the
    /// services before it (the HTTP server) for `seconds`.
    public func run() async throws {
        try? await gracefulShutdown()
        begin()
        try? await Task.sleep(for: seconds)
    }

    private func begin() {
        lock.withLock { draining = true }
    }
}
