import SCMGraph

/// The static type of a runtime value: dtype and concrete shape.
public struct TensorSpec: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(_ dtype: DType, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    /// Bytes of one element (1 for bool); every dtype the runtime computes with is byte-aligned.
    public var elementBytes: Int { (dtype.bitWidth ?? 8) / 8 }
    public var byteCount: Int { count * elementBytes }
    public var description: String { "\(dtype) \(shape)" }
}

/// Dtypes whose elements the runtime can hold: byte-aligned fixed-width types. Kernels that
/// compute accept a subset, documented per op.
extension DType {
    var isByteAligned: Bool { (bitWidth ?? 0) >= 8 && self != .string }
}

/// Shape arithmetic shared by the ops.
enum Shapes {
    /// numpy-style broadcast of two shapes, or nil when they do not broadcast.
    static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Row-major strides of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// Strides to read a tensor of shape `from` as if broadcast to `to` (0 on broadcast axes).
    static func broadcastStrides(from: [Int], to: [Int]) -> [Int] {
        let s = strides(from)
        let off = to.count - from.count
        return (0..<to.count).map { i in i < off ? 0 : (from[i - off] == 1 && to[i] != 1 ? 0 : s[i - off]) }
    }

    /// Normalizes a possibly negative axis against `rank`, or nil when out of range.
    static func axis(_ a: Int, rank: Int) -> Int? {
        let v = a < 0 ? a + rank : a
        return (0..<max(rank, 1)).contains(v) || (rank == 0 && v == 0) ? v : nil
    }
}
