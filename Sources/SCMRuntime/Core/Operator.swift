import SCMGraph

/// The runtime half of an op: executes one node on buffers whose shapes were fixed at compile
/// time. Kernels are immutable and shared by every session of a plan.
public protocol Kernel: Sendable {
    func run(_ io: KernelIO)
}

/// Buffers of one node's execution. Pointers are fixed for the life of a session.
public struct KernelIO {
    let ins: UnsafePointer<UnsafeRawPointer>
    let outs: UnsafePointer<UnsafeMutableRawPointer>
    /// The session's workers: kernels split work into chunks sized independently of the count.
    public let pool: ThreadPool
    let scratchBase: UnsafeMutableRawPointer
    let scratchStride: Int

    @inline(__always) public func input<T>(_ i: Int, _: T.Type = T.self) -> UnsafePointer<T> {
        ins[i].assumingMemoryBound(to: T.self)
    }
    @inline(__always) public func output<T>(_ i: Int, _: T.Type = T.self) -> UnsafeMutablePointer<T> {
        outs[i].assumingMemoryBound(to: T.self)
    }
    @inline(__always) public func rawInput(_ i: Int) -> UnsafeRawPointer { ins[i] }
    @inline(__always) public func rawOutput(_ i: Int) -> UnsafeMutableRawPointer { outs[i] }
    /// The scratch memory of `worker` (64-byte aligned, `OpBuild.scratchBytes` long).
    @inline(__always) public func scratch<T>(_ worker: Int, _: T.Type = T.self) -> UnsafeMutablePointer<T> {
        (scratchBase + worker * scratchStride).assumingMemoryBound(to: T.self)
    }
}

/// What an op decides at compile time for one node.
public struct OpBuild {
    /// Types of the node's outputs, in order.
    public var outputs: [TensorSpec]
    /// The kernel; nil for views (output 0 is input 0's bytes under another shape).
    public var kernel: (any Kernel)?
    /// Input indices whose buffer output 0 may take over when that input dies here (elementwise).
    public var inPlace: [Int] = []
    /// Scratch bytes per worker.
    public var scratchBytes: Int = 0
    /// Floating-point operations per run (2 x multiply-adds of Conv/Gemm/MatMul), for reports.
    public var flops: Int = 0
    /// Outputs known at compile time without running (Shape, Constant).
    public var constants: [Tensor]? = nil

    public init(outputs: [TensorSpec], kernel: (any Kernel)?, inPlace: [Int] = [], scratchBytes: Int = 0,
                flops: Int = 0) {
        self.outputs = outputs
        self.kernel = kernel
        self.inPlace = inPlace
        self.scratchBytes = scratchBytes
        self.flops = flops
    }

    /// A node whose outputs are fixed constants.
    public static func constant(_ values: [Tensor]) -> OpBuild {
        var b = OpBuild(outputs: values.map { TensorSpec($0.dtype, $0.shape) }, kernel: nil)
        b.constants = values
        return b
    }

    /// A view: output 0 has input 0's bytes with `spec`'s shape.
    public static func view(_ spec: TensorSpec) -> OpBuild { OpBuild(outputs: [spec], kernel: nil) }
}

/// An op: its schema checks and shape rule (`build`), and its kernel. The rules for forward-mode
/// (JVP) and reverse-mode (VJP) differentiation join this protocol with the trainer.
public protocol Operator: Sendable {
    /// The op types (default domain unless prefixed `domain:`) this definition serves.
    static var opTypes: [String] { get }
    /// Validates the node, infers its output types and returns its kernel.
    static func build(_ ctx: OpContext) throws -> OpBuild
}

/// Everything an op sees of a node at compile time.
public struct OpContext {
    public let node: Node
    /// Human-readable name of the node for errors.
    public let label: String
    /// The opset version of the node's domain.
    public let opset: Int
    /// Types of the inputs, index-aligned with `node.inputs`; nil for an omitted optional input.
    public let inputs: [TensorSpec?]
    /// Values of the inputs known at compile time (initializers, constants, folded values).
    public let values: [Tensor?]
    /// Names of the graph inputs each input is (for `.needsValue`), nil otherwise.
    let graphInputNames: [String?]
    /// The most elements a value may have: the compiler's `ResourceLimits.maxTensorElements`
    /// within `Compiler.maxTensorElements`. `checked` applies it, so ops that build tables or
    /// values proportional to their output check it before that work.
    var maxElements: Int = Compiler.maxTensorElements
    /// The arithmetic the plan's convolutions use (`Compiler.compile`'s `precision`, fp32 for
    /// nodes evaluated at compile time).
    public internal(set) var precision: Precision = .fp32

    public var inputCount: Int { inputs.count }

    public func error(_ message: String) -> RuntimeError { RuntimeError(.invalidModel, at: label, message) }
    public func unsupported(_ message: String) -> RuntimeError { RuntimeError(.unsupported, at: label, message) }

    /// The type of required input `i`.
    public func input(_ i: Int) throws -> TensorSpec {
        guard i < inputs.count, let t = inputs[i] else {
            throw error("input \(i) is required but missing (\(inputs.count) given)")
        }
        return t
    }

    /// The type of optional input `i`, nil when absent or empty.
    public func optionalInput(_ i: Int) -> TensorSpec? { i < inputs.count ? inputs[i] : nil }
    public func has(_ i: Int) -> Bool { optionalInput(i) != nil }

    /// Requires between `min` and `max` inputs and exactly `outputs` outputs (or at most).
    public func arity(inputs lo: Int, _ hi: Int, outputs: ClosedRange<Int> = 1...1) throws {
        guard (lo...hi).contains(inputs.count) else {
            throw error("takes \(lo == hi ? "\(lo)" : "\(lo) to \(hi)") inputs, has \(inputs.count)")
        }
        guard outputs.contains(node.outputs.count) else {
            throw error("has \(node.outputs.count) outputs, expected \(outputs.lowerBound == outputs.upperBound ? "\(outputs.lowerBound)" : "\(outputs.lowerBound) to \(outputs.upperBound)")")
        }
    }

    /// The value of input `i`, which must be known at compile time.
    public func value(_ i: Int, _ role: String) throws -> Tensor {
        guard i < values.count, let v = values[i] else {
            if i < graphInputNames.count, let g = graphInputNames[i] {
                throw RuntimeError(.needsValue, at: label,
                                   "input '\(g)' (\(role)) must be known at compile time: supply its value when compiling",
                                   inputName: g)
            }
            throw RuntimeError(.unsupported, at: label,
                               "\(role) ('\(i < node.inputs.count ? node.inputs[i] : "")') must be a constant or computed from shapes")
        }
        return v
    }

    /// The integer values (int32/int64) of input `i`, known at compile time.
    public func intValues(_ i: Int, _ role: String) throws -> [Int] {
        let t = try value(i, role)
        if let v = t.scalars(as: Int64.self) { return v.map { Int($0) } }
        if let v = t.scalars(as: Int32.self) { return v.map { Int($0) } }
        throw error("\(role) must be int64 or int32, is \(t.dtype)")
    }

    /// The float values of input `i` (float32/float64), known at compile time.
    public func floatValues(_ i: Int, _ role: String) throws -> [Float] {
        let t = try value(i, role)
        if let v = t.scalars(as: Float.self) { return v }
        if let v = t.scalars(as: Double.self) { return v.map { Float($0) } }
        throw error("\(role) must be float, is \(t.dtype)")
    }

    // MARK: attributes

    public func attribute(_ name: String) -> Attribute? { node.attribute(name) }

    public func int(_ name: String, _ def: Int) throws -> Int { try node.int(name, def, at: label) }
    public func optionalInt(_ name: String) throws -> Int? {
        attribute(name) == nil ? nil : try int(name, 0)
    }
    public func float(_ name: String, _ def: Float) throws -> Float { try node.float(name, def, at: label) }
    public func ints(_ name: String) throws -> [Int]? { try node.ints(name, at: label) }
    public func floats(_ name: String) throws -> [Float]? { try node.floats(name, at: label) }
    public func string(_ name: String, _ def: String) throws -> String { try node.string(name, def, at: label) }

    /// Normalizes `axis` against `rank` or throws naming the attribute.
    public func axis(_ a: Int, rank: Int, _ what: String = "axis") throws -> Int {
        guard let v = Shapes.axis(a, rank: rank) else { throw error("\(what) \(a) is out of range for rank \(rank)") }
        return v
    }

    /// Throws unless every dim is non-negative and the element count fits (shapes computed from
    /// attribute or input values, which a file controls).
    public func checked(_ shape: [Int], _ what: String = "output shape") throws -> [Int] {
        guard let n = ShapeMath.elementCount(shape), n <= Compiler.maxTensorElements else {
            throw error("\(what) \(shape) is negative or too large")
        }
        guard n <= maxElements else {
            throw RuntimeError(.limitExceeded, at: label, "\(what) \(shape) has \(n) elements, more than the limit of \(maxElements) (max-tensor-elements)")
        }
        return shape
    }

    /// Throws unless `spec.dtype` is one of `allowed`.
    public func require(_ spec: TensorSpec, in allowed: Set<DType>, _ role: String = "input") throws {
        guard allowed.contains(spec.dtype) else {
            throw unsupported("\(role) dtype \(spec.dtype) is not supported (supported: \(allowed.map(\.name).sorted().joined(separator: ", ")))")
        }
    }
}
