import Foundation

/// FNV-1a over bytes, 8 at a time (each 64-bit word as one step): the digests that key
/// `scm-eval`'s feature cache and identify a teacher checkpoint across moves (`--resume`).
public func fnv(_ h: inout UInt64, _ bytes: UnsafeRawBufferPointer) {
    let words = bytes.count / 8
    for i in 0..<words {
        h ^= bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
        h = h &* 0x100_0000_01b3
    }
    for i in (8 * words)..<bytes.count {
        h ^= UInt64(bytes[i])
        h = h &* 0x100_0000_01b3
    }
}

/// `fnv` of a file's bytes from the FNV-1a offset basis; nil when the file cannot be read.
public func fnvDigest(ofFile path: String) -> UInt64? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    data.withUnsafeBytes { fnv(&h, $0) }
    return h
}
