import SCMGraph

/// What derivative rules share: the node, its types, and helpers that emit standard ONNX nodes
/// through the transform's builder. `JVPRule` (forward mode) and `VJPRule` (reverse mode) are
/// emitters.
public protocol RuleEmitter {
    var node: Node { get }
    var label: String { get }
    /// The opset of the node's domain.
    var opset: Int { get }
    /// The opset of the default domain, at which every emitted standard op is read.
    var defaultOpset: Int { get }
    var inputs: [TensorSpec?] { get }
    var outputs: [TensorSpec] { get }
    var values: [Tensor?] { get }
    var builder: DerivativeBuilder { get }
    /// The base of the names of emitted values.
    var hint: String { get }
}

extension RuleEmitter {
    /// Name of input `i`.
    public func input(_ i: Int) -> String { node.inputs[i] }
    /// Name of output `i`.
    public func output(_ i: Int) -> String { node.outputs[i] }
    /// Whether input `i` is present.
    public func has(_ i: Int) -> Bool { i < inputs.count && inputs[i] != nil && !node.inputs[i].isEmpty }

    func error(_ message: String) -> RuntimeError { RuntimeError(.notDifferentiable, at: label, message) }

    /// Emits `op` on `inputs` and returns its first output.
    public func emit(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "") -> String {
        builder.emit(op, inputs, attributes, domain: domain, hint: hint)[0]
    }

    /// Emits `op` with `outputs` outputs.
    public func emit(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "", outputs: Int) -> [String] {
        builder.emit(op, inputs, attributes, domain: domain, outputs: outputs, hint: hint)
    }

    /// The float dtype the rule computes in (the first float output's, else float32).
    var floatType: DType { outputs.first { $0.dtype == .float64 }?.dtype ?? (inputs.compactMap { $0 }.first { $0.dtype == .float64 } != nil ? .float64 : .float) }

    /// A scalar (rank 0) constant of the rule's float dtype.
    public func scalar(_ v: Double) -> String {
        let t: Tensor = floatType == .float64 ? try! Tensor(shape: [], scalars: [v]) : try! Tensor(shape: [], scalars: [Float(v)])
        return builder.constant(t, hint: "\(node.outputs.first ?? "v")_c")
    }

    /// An int64 vector constant (shapes, axes).
    public func ints(_ v: [Int]) -> String {
        builder.constant(try! Tensor(shape: [v.count], scalars: v.map(Int64.init)), hint: "\(node.outputs.first ?? "v")_i")
    }

    public func mul(_ a: String, _ b: String) -> String { emit("Mul", [a, b]) }
    public func div(_ a: String, _ b: String) -> String { emit("Div", [a, b]) }
    public func sub(_ a: String, _ b: String) -> String { emit("Sub", [a, b]) }
    public func neg(_ a: String) -> String { emit("Neg", [a]) }
    public func shape(_ v: String) -> String { emit("Shape", [v]) }

    /// `a + b` where either may be zero (nil).
    public func add(_ a: String?, _ b: String?) -> String? {
        switch (a, b) {
        case let (a?, b?): emit("Add", [a, b])
        case let (a?, nil): a
        case let (nil, b?): b
        case (nil, nil): nil
        }
    }

    /// `a + b` of two present values.
    public func plus(_ a: String, _ b: String) -> String { emit("Add", [a, b]) }

    /// The sum of the terms that are not zero (nil when all are), added in order.
    public func sum(_ terms: [String?]) -> String? { terms.reduce(nil) { add($0, $1) } }

    /// The node itself applied to other values: its inputs with `replacements` substituted, the
    /// same attributes (for ops linear in the replaced inputs: views, pooling, resizing, reductions).
    public func sameOp(_ replacements: [Int: String], outputs count: Int? = nil) -> [String] {
        var ins = node.inputs
        for (i, t) in replacements { ins[i] = t }
        return emit(node.opType, ins, node.attributes, domain: node.domain, outputs: count ?? node.outputs.count)
    }

    /// Zeros of `value`'s runtime shape, in the rule's float dtype.
    public func zeros(like value: String) -> String {
        let zero: Tensor = floatType == .float64 ? try! Tensor(shape: [1], scalars: [Double(0)]) : try! Tensor(shape: [1], scalars: [Float(0)])
        return emit("ConstantOfShape", [shape(value)], [Attribute("value", .tensor(zero))])
    }

    /// `ReduceSum` / `ReduceMean` of `x` over `axes`, in the form the default opset reads (axes as
    /// an input from opset 13 for ReduceSum and 18 for ReduceMean, else as an attribute).
    public func reduce(_ op: String, _ x: String, axes: [Int], keepdims: Bool = true) -> String {
        let fromInput = op == "ReduceSum" ? defaultOpset >= 13 : defaultOpset >= 18
        let keep = Attribute("keepdims", .int(keepdims ? 1 : 0))
        if fromInput { return emit(op, [x, ints(axes)], [keep]) }
        return emit(op, [x], [Attribute("axes", .ints(axes)), keep])
    }

    /// `x` reshaped to `shape` (0 copies a dim, -1 infers one).
    public func reshape(_ x: String, _ shape: [Int]) -> String { emit("Reshape", [x, ints(shape)]) }

    /// `x` reshaped to `like`'s runtime shape.
    public func reshape(_ x: String, like: String) -> String { emit("Reshape", [x, shape(like)]) }

    /// SiLU's derivative at `pre`: s (1 + pre (1 - s)) with s = sigmoid(pre).
    public func siluDerivative(_ pre: String) -> String {
        let sig = emit("Sigmoid", [pre])
        return mul(sig, plus(scalar(1), mul(pre, sub(scalar(1), sig))))
    }

    /// The node's attributes without those named in `names`.
    public func attributes(removing names: Set<String>) -> [Attribute] { node.attributes.filter { !names.contains($0.name) } }

    /// Float attribute `name` (default `def`), its type checked.
    func floatAttribute(_ name: String, _ def: Float) throws -> Double { Double(try node.float(name, def, at: label)) }
    /// Int attribute `name` (default `def`), its type checked.
    func intAttribute(_ name: String, _ def: Int) throws -> Int { try node.int(name, def, at: label) }
    /// Ints attribute `name`, its type checked.
    func intsAttribute(_ name: String) throws -> [Int]? { try node.ints(name, at: label) }
    /// A per-channel [C] tensor reshaped to broadcast over [N, C, spatial...] of `rank`.
    func channelShaped(_ v: String, rank: Int) -> String { reshape(v, [1, -1] + Array(repeating: 1, count: rank - 2)) }
}

