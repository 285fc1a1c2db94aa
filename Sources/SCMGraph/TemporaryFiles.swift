import Foundation

/// The temporary files the library's atomic writes have open right now (`ModelFile.writeAll
/// Atomically` writes each file beside its destination, then renames it into place): what a tool
/// removes when it is interrupted, so that SIGINT or SIGTERM leave no `.name.tmp-*` behind; and
/// the folders a write created for its files, removed with them.
public enum TemporaryFiles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths = Set<String>()
    nonisolated(unsafe) private static var folders: [String] = []

    static func addFolder(_ path: String) {
        lock.lock()
        folders.append(path)
        lock.unlock()
    }

    static func removeFolder(_ path: String) {
        lock.lock()
        folders.removeAll { $0 == path }
        lock.unlock()
    }

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

    /// Unlinks every temporary file in flight, then removes the folders created for them, the
    /// innermost first (and forgets them all); returns how many files there were.
    @discardableResult
    public static func removeAll() -> Int {
        lock.lock()
        defer { lock.unlock() }
        for p in paths { unlink(p) }
        for f in folders.reversed() { rmdir(f) }
        let n = paths.count
        paths.removeAll()
        folders.removeAll()
        return n
    }
}
