/// One dimension of a value's shape: a known size, a named symbol (`N`), or unknown.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case value(Int)
    case param(String)
    case unknown

    public var description: String {
        switch self {
        case .value(let v): String(v)
        case .param(let p): p
        case .unknown: "?"
        }
    }

    /// The size when it is known.
    public var value: Int? {
        if case .value(let v) = self { return v }
        return nil
    }

    /// The symbol's name when the dimension is symbolic.
    public var symbol: String? {
        if case .param(let p) = self { return p }
        return nil
    }
}

/// A possibly symbolic shape, as declared on graph inputs, outputs and value_info.
public typealias Shape = [Dim]

extension Array where Element == Dim {
    /// The concrete sizes, when every dimension is known.
    public var concrete: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(count)
        for d in self {
            guard let v = d.value else { return nil }
            out.append(v)
        }
        return out
    }

    /// `[N,3,28,28]`-style rendering.
    public var shapeDescription: String { "[" + map(\.description).joined(separator: ",") + "]" }
}

/// Element-count arithmetic that reports overflow instead of trapping.
public enum ShapeMath {
    /// The product of `dims`, or `nil` when a dim is negative or the product overflows `Int`.
    public static func elementCount(_ dims: [Int]) -> Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o else { return nil }
            n = p
        }
        return n
    }
}
