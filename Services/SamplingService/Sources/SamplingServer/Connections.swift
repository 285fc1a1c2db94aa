import Foundation
import HummingbirdCore
import Logging
import NIOCore
import Prometheus

/// The open connections and what each is doing, for the connection cap: when the last place is
/// taken, an idle connection (no request, or a head not yet complete) is closed to make room for
/// the next one, so that idle keep-alives and clients holding unfinished requests cannot lock
/// others (a health probe among them) out. Connections that have not had a request answered go
/// first, the one idle the longest first; keep-alives of clients already served after them.
/// Connections reading a body or being answered are never closed; when every open connection is,
/// the server stops accepting until one closes.
final class Connections: @unchecked Sendable {
    private struct Entry {
        let channel: any Channel
        var idle: Bool
        /// Whether it has had a request answered.
        var served: Bool
        var since: NIODeadline
    }

    private let lock = NSLock()
    private var open: [ObjectIdentifier: Entry] = [:]
    private let evicted: Counter

    init(metrics: ServiceMetrics) { evicted = metrics.evicted }

    /// Records that the connection `id` (on `channel`) became idle or busy, and whether it has
    /// had a request answered.
    func set(_ id: ObjectIdentifier, channel: any Channel, idle: Bool, served: Bool) {
        lock.lock()
        open[id] = Entry(channel: channel, idle: idle, served: served, since: .now())
        lock.unlock()
    }

    func remove(_ id: ObjectIdentifier) {
        lock.lock()
        open[id] = nil
        lock.unlock()
    }

    /// Closes an idle connection, one never served before a served one, the one idle the longest
    /// first; false when none is idle.
    func evictOne() -> Bool {
        lock.lock()
        let oldest = open.filter(\.value.idle).min { a, b in
            a.value.served != b.value.served ? !a.value.served : a.value.since < b.value.since
        }
        if let oldest { open[oldest.key] = nil }
        lock.unlock()
        guard let oldest else { return false }
        evicted.increment()
        oldest.value.channel.close(promise: nil)
        return true
    }
}

/// The connection cap (`AvailableConnectionsDelegate`): never more than `cap` open. The server
/// keeps a place free while any connection is idle: when a connection takes the last place, one is
/// closed as `Connections.evictOne` chooses. With none idle, it stops accepting at the cap (new
/// clients wait in the kernel's backlog) until one closes.
struct ConnectionCap: AvailableConnectionsDelegate {
    let cap: Int
    let connections: Connections
    private var count = 0

    init(cap: Int, connections: Connections) {
        self.cap = cap
        self.connections = connections
    }

    mutating func connectionOpened() {
        count += 1
        if count >= cap { _ = connections.evictOne() }
    }

    mutating func connectionClosed() { count -= 1 }

    func isAcceptingNewConnections() -> Bool { count < cap }
}
