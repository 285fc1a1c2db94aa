import Foundation

/// The machine's memory as the kernel reports it, for sizing checks made before large
/// allocations (a request past it is refused with a message instead of failing to allocate).
public enum SystemMemory {
    /// Bytes available for new allocations without swapping (`MemAvailable` of /proc/meminfo),
    /// or nil where that is not known.
    public static var available: Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int(fields[1]) else { return nil }
            return kib.multipliedReportingOverflow(by: 1024).overflow ? Int.max : kib * 1024
        }
        return nil
    }
}
