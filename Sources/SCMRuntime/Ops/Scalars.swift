import Foundation
import SCMGraph

/// Element types of arithmetic ops: float32/64 and the fixed-width integers (wrapping arithmetic,
/// truncating division; integer division by zero gives 0 instead of trapping).
protocol ArithScalar: Comparable, TensorScalar {
    static func add(_ a: Self, _ b: Self) -> Self
    static func sub(_ a: Self, _ b: Self) -> Self
    static func mul(_ a: Self, _ b: Self) -> Self
    static func div(_ a: Self, _ b: Self) -> Self
    static func pow(_ a: Self, _ b: Self) -> Self
    static func minimum(_ a: Self, _ b: Self) -> Self
    /// ONNX Mod: `fmod` (C's, the sign of a) or the floored remainder (the sign of b, Python's %).
    static func mod(_ a: Self, _ b: Self, fmod: Bool) -> Self
    static func maximum(_ a: Self, _ b: Self) -> Self
    var asDouble: Double { get }
    /// The identity of max: -infinity, or the type's minimum.
    static var lowest: Self { get }
    /// The identity of min: +infinity, or the type's maximum.
    static var highest: Self { get }
    init(fromDouble d: Double)
}

extension ArithScalar where Self: BinaryFloatingPoint {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a - b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a * b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self { a / b }
    // NaN propagates, as numpy.minimum / maximum.
    @inline(__always) static func minimum(_ a: Self, _ b: Self) -> Self { a.isNaN || a < b ? a : b }
    @inline(__always) static func maximum(_ a: Self, _ b: Self) -> Self { a.isNaN || a > b ? a : b }
    @inline(__always) static func mod(_ a: Self, _ b: Self, fmod: Bool) -> Self {
        let r = Self(Foundation.fmod(Double(a), Double(b)))
        return fmod || r == 0 || (r < 0) == (b < 0) ? r : r + b
    }
    var asDouble: Double { Double(self) }
    static var lowest: Self { -.infinity }
    static var highest: Self { .infinity }
    init(fromDouble d: Double) { self.init(d) }
}

extension Float: ArithScalar {
    @inline(__always) static func pow(_ a: Float, _ b: Float) -> Float { Foundation.pow(a, b) }
}
extension Double: ArithScalar {
    @inline(__always) static func pow(_ a: Double, _ b: Double) -> Double { Foundation.pow(a, b) }
}

extension ArithScalar where Self: FixedWidthInteger {
    @inline(__always) static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func sub(_ a: Self, _ b: Self) -> Self { a &- b }
    @inline(__always) static func mul(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func div(_ a: Self, _ b: Self) -> Self {
        if b == 0 { return 0 }
        if Self.isSigned && b == -1 { return 0 &- a }
        return a / b
    }
    static func pow(_ a: Self, _ b: Self) -> Self {
        if b < 0 { return a == 1 ? 1 : (Self.isSigned && a == 0 &- 1 ? (b & 1 == 0 ? 1 : a) : 0) }
        var r: Self = 1, base = a, e = b
        while e > 0 {
            if e & 1 == 1 { r = r &* base }
            base = base &* base
            e >>= 1
        }
        return r
    }
    @inline(__always) static func mod(_ a: Self, _ b: Self, fmod: Bool) -> Self {
        if b == 0 { return 0 }  // numpy gives 0 for integer x % 0 (with a warning); no trap here
        if Self.isSigned && b == 0 &- 1 { return 0 }
        let r = a % b
        return fmod || r == 0 || (r < 0) == (b < 0) ? r : r &+ b
    }
    @inline(__always) static func minimum(_ a: Self, _ b: Self) -> Self { Swift.min(a, b) }
    @inline(__always) static func maximum(_ a: Self, _ b: Self) -> Self { Swift.max(a, b) }
    var asDouble: Double { Double(self) }
    static var lowest: Self { .min }
    static var highest: Self { .max }
    init(fromDouble d: Double) {
        if d.isNaN { self = 0 } else if d >= Double(Self.max) { self = .max } else if d <= Double(Self.min) { self = .min } else { self.init(d) }
    }
}

extension Int8: ArithScalar {}
extension Int16: ArithScalar {}
extension Int32: ArithScalar {}
extension Int64: ArithScalar {}
extension UInt8: ArithScalar {}
extension UInt16: ArithScalar {}
extension UInt32: ArithScalar {}
extension UInt64: ArithScalar {}

/// Dtypes with an `ArithScalar` type.
let arithmeticDTypes: Set<DType> = [.float, .float64, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]

/// Calls `body` with the Swift type of an arithmetic dtype.
@inline(__always) func withArithType<R>(_ d: DType, _ body: (any ArithScalar.Type) -> R) -> R {
    switch d {
    case .float: body(Float.self)
    case .float64: body(Double.self)
    case .int8: body(Int8.self)
    case .int16: body(Int16.self)
    case .int32: body(Int32.self)
    case .int64: body(Int64.self)
    case .uint8: body(UInt8.self)
    case .uint16: body(UInt16.self)
    case .uint32: body(UInt32.self)
    default: body(UInt64.self)
    }
}
