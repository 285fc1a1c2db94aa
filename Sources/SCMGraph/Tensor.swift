import Foundation

/// Immutable bytes of a tensor: either owned (allocated 64-byte aligned, freed on deinit) or
/// borrowed from another object that stays alive as long as this storage (for initializers,
/// the decoded protobuf message, so `raw_data` is not copied again after protobuf-c's copy).
public final class TensorStorage: @unchecked Sendable {
    /// The bytes. Never written after initialization.
    public let bytes: UnsafeRawBufferPointer
    private let owner: AnyObject?
    private let allocation: UnsafeMutableRawPointer?

    /// Storage of `byteCount` bytes filled by `initialize` (which sees zeroed memory).
    public init(byteCount: Int, initialize: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        let buffer = UnsafeMutableRawBufferPointer(start: raw, count: byteCount)
        do { try initialize(buffer) } catch {
            raw.deallocate()
            throw error
        }
        self.bytes = UnsafeRawBufferPointer(buffer)
        self.owner = nil
        self.allocation = raw
    }

    /// A copy of `source`.
    public convenience init(copying source: UnsafeRawBufferPointer) {
        self.init(byteCount: source.count) { dst in
            if let base = source.baseAddress, source.count > 0 {
                dst.baseAddress!.copyMemory(from: base, byteCount: source.count)
            }
        }
    }

    /// A view of memory that `owner` keeps alive.
    public init(borrowing bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        self.bytes = bytes
        self.owner = owner
        self.allocation = nil
    }

    /// Whether the bytes belong to another object (no copy was made).
    public var isBorrowed: Bool { allocation == nil }

    deinit { allocation?.deallocate() }
}

/// Elements of a tensor: a little-endian, row-major byte buffer, or strings for `DType.string`.
public enum TensorData: Sendable {
    case bytes(TensorStorage)
    case strings([[UInt8]])
}

/// How a tensor's payload was (and will be) encoded in a `TensorProto`.
public enum PayloadEncoding: Hashable, Sendable {
    /// `raw_data` (the default for tensors we create).
    case rawData
    /// The typed repeated field for the dtype (`float_data`, `int32_data`, ...).
    case typedField
    /// An external file beside the model; loaded into memory, written back inline as `raw_data`.
    case external(location: String, offset: Int, length: Int)
}

/// Where a tensor came from in a model file: the TensorProto fields that are not its value.
public struct TensorMeta: Hashable, Sendable {
    public var name: String
    public var docString: String
    public var encoding: PayloadEncoding
    public var unknownFields: UnknownFields

    public init(name: String = "", docString: String = "", encoding: PayloadEncoding = .rawData,
                unknownFields: UnknownFields = UnknownFields()) {
        self.name = name
        self.docString = docString
        self.encoding = encoding
        self.unknownFields = unknownFields
    }
}

/// A dense tensor: element type, concrete shape, and its elements.
public struct Tensor: Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let data: TensorData
    /// Name and encoding details, for tensors that live in a model file.
    public var meta: TensorMeta

    /// A tensor over existing bytes or strings. Throws when the payload size does not match
    /// `shape` x `dtype`.
    public init(dtype: DType, shape: [Int], data: TensorData, meta: TensorMeta = TensorMeta()) throws {
        guard let count = ShapeMath.elementCount(shape) else {
            throw ModelError(.invalidTensor, at: meta.name.isEmpty ? "tensor" : "tensor '\(meta.name)'",
                             "dims \(shape) are negative or their product overflows")
        }
        switch data {
        case .bytes(let s):
            guard let expected = dtype.byteCount(elements: count) else {
                throw ModelError(.invalidTensor, at: "tensor '\(meta.name)'",
                                 "\(dtype) tensors hold strings, not bytes")
            }
            guard s.bytes.count == expected else {
                throw ModelError(.invalidTensor, at: "tensor '\(meta.name)'",
                                 "payload has \(s.bytes.count) bytes, expected \(expected) for \(dtype) \(shape)")
            }
        case .strings(let strs):
            guard dtype == .string, strs.count == count else {
                throw ModelError(.invalidTensor, at: "tensor '\(meta.name)'",
                                 "\(strs.count) strings for \(dtype) \(shape) (\(count) elements)")
            }
        }
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.meta = meta
    }

    /// A tensor holding a copy of `scalars`.
    public init<T: TensorScalar>(shape: [Int], scalars: [T], name: String = "") throws {
        let storage = scalars.withUnsafeBytes { TensorStorage(copying: $0) }
        try self.init(dtype: T.dtype, shape: shape, data: .bytes(storage), meta: TensorMeta(name: name))
    }

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Payload size in bytes (for strings, the sum of their lengths).
    public var byteCount: Int {
        switch data {
        case .bytes(let s): s.bytes.count
        case .strings(let strs): strs.reduce(0) { $0 + $1.count }
        }
    }

    /// The raw bytes, or `nil` for string tensors.
    public var storage: TensorStorage? {
        if case .bytes(let s) = data { return s }
        return nil
    }

    /// The elements as Swift values when `T` matches the dtype.
    public func scalars<T: TensorScalar>(as type: T.Type = T.self) -> [T]? {
        guard T.dtype == dtype, let s = storage else { return nil }
        return Array(s.bytes.bindMemory(to: T.self))
    }
}

/// Swift types that are the element type of a tensor dtype.
public protocol TensorScalar: Sendable {
    static var dtype: DType { get }
}
extension Float: TensorScalar { public static var dtype: DType { .float } }
extension Double: TensorScalar { public static var dtype: DType { .float64 } }
extension Int8: TensorScalar { public static var dtype: DType { .int8 } }
extension Int16: TensorScalar { public static var dtype: DType { .int16 } }
extension Int32: TensorScalar { public static var dtype: DType { .int32 } }
extension Int64: TensorScalar { public static var dtype: DType { .int64 } }
extension UInt8: TensorScalar { public static var dtype: DType { .uint8 } }
extension UInt16: TensorScalar { public static var dtype: DType { .uint16 } }
extension UInt32: TensorScalar { public static var dtype: DType { .uint32 } }
extension UInt64: TensorScalar { public static var dtype: DType { .uint64 } }
extension Bool: TensorScalar { public static var dtype: DType { .bool } }
