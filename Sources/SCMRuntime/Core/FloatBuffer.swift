import SCMGraph

/// Float memory that tensors borrow across runs (training state, a sampler's batch buffers).
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// `count` zeros.
    public init(_ count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { pointer.deallocate() }
    public var raw: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: count * 4) }
    /// A float32 tensor of `shape` (count elements) that reads this memory.
    public func tensor(shape: [Int]) throws -> Tensor {
        try Tensor(dtype: .float, shape: shape, data: .bytes(TensorStorage(borrowing: UnsafeRawBufferPointer(raw), owner: self)))
    }
}
