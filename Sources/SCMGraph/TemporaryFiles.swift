import Foundation

/// The temporary files the library's atomic writes have open right now (`ModelFile.writeAll
/// Atomically` writes each file beside its destination, then renames it into place): what a tool
/// removes when it is interrupted, so that SIGINT or SIGTERM leave no `.name.tmp-*` behind.
public enum TemporaryFiles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths = Set<String>()

    static func add(_ path: String) {
        lock.lock()
        paths.insert(path)
        lock.unlock()
    }

    static func remove(_ path: String) {
        lock.lock()
        paths.remove(path)
        lock.unlock()
    }

    /// Unlinks every temporary file in flight (and forgets them); returns how many there were.
    @discardableResult
    public static func removeAll() -> Int {
        lock.lock()
        defer { lock.unlock() }
        for p in paths { unlink(p) }
        let n = paths.count
        paths.removeAll()
        return n
    }
}
