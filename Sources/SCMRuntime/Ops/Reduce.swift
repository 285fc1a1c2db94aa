import Foundation
import SCMGraph

/// The lines along one axis that Softmax and LogSoftmax normalize: `outer * inner` lines of `len`
/// elements, `inner` apart.
struct AxisLines: Sendable {
    let outer, len, inner: Int

    /// The node's one float input and its lines along the `axis` attribute (default -1).
    static func read(_ ctx: OpContext) throws -> (TensorSpec, AxisLines) {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let len = x.rank == 0 ? 1 : x.shape[axis]
        let inner = x.rank == 0 ? 1 : x.shape[(axis + 1)...].reduce(1, *)
        return (x, AxisLines(outer: x.count / max(1, len * inner), len: len, inner: inner))
    }

    /// `body(x, y)` for every line of input 0 and output 0 (its first element), the lines in
    /// fixed chunks spread over the pool.
    func forEach(_ io: KernelIO, _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        let lines = outer * inner, len = len, inner = inner
        let chunk = max(1, 8192 / max(len, 1))
        io.pool.parallelFor((lines + chunk - 1) / chunk, elements: lines * len) { ch, _ in
            for l in (ch * chunk)..<min(lines, (ch + 1) * chunk) {
                let o = l / inner, i = l % inner
                body(x + o * len * inner + i, y + o * len * inner + i)
            }
        }
    }
}

/// Softmax along one axis (opset 13 semantics), max-subtracted.
enum SoftmaxOp: Operator {
    static let opTypes = ["Softmax"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let (x, lines) = try AxisLines.read(ctx)
        return OpBuild(outputs: [x], kernel: SoftmaxKernel(lines: lines), inPlace: [0])
    }
}

struct SoftmaxKernel: Kernel {
    let lines: AxisLines
    func run(_ io: KernelIO) {
        let len = lines.len, inner = lines.inner
        lines.forEach(io) { xs, ys in
            if inner == 1 {
                softmaxLine(xs, ys, len)
                return
            }
            var m = -Float.infinity
            for k in 0..<len { m = max(m, xs[k * inner]) }
            var sum: Float = 0
            for k in 0..<len {
                let e = exp1(xs[k * inner] - m)
                ys[k * inner] = e
                sum += e
            }
            let inv = 1 / sum
            for k in 0..<len { ys[k * inner] *= inv }
        }
    }
}

/// Softmax of `len` contiguous floats: 8-lane max, exp and partial sums (a fixed order).
@inline(__always) func softmaxLine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ len: Int) {
    var m8 = SIMD8<Float>(repeating: -.infinity)
    var i = 0
    while i + 8 <= len {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        m8.replace(with: v, where: v .> m8)
        i += 8
    }
    var m = -Float.infinity
    for k in 0..<8 where m8[k] > m { m = m8[k] }
    for k in i..<len where x[k] > m { m = x[k] }
    map8(x, y, len) { v in exp8(v - m) }
    var s8 = SIMD8<Float>(repeating: 0)
    i = 0
    while i + 8 <= len {
        s8 += UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var sum = s8.sum()
    for k in i..<len { sum += y[k] }
    let inv = 1 / sum
    i = 0
    while i + 8 <= len {
        let p = UnsafeMutableRawPointer(y + i)
        p.storeBytes(of: p.loadUnaligned(as: SIMD8<Float>.self) * inv, as: SIMD8<Float>.self)
        i += 8
    }
    for k in i..<len { y[k] *= inv }
}

/// LogSoftmax along one axis (opset 13 semantics, as Softmax; the runtime reads opset 13 or later).
enum LogSoftmaxOp: Operator {
    static let opTypes = ["LogSoftmax"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let (x, lines) = try AxisLines.read(ctx)
        return OpBuild(outputs: [x], kernel: LogSoftmaxKernel(lines: lines), inPlace: [0])
    }
}

/// Per line: m = max, y = (x - m) - log(sum exp(x - m)), the sum in double in index order.
struct LogSoftmaxKernel: Kernel {
    let lines: AxisLines
    func run(_ io: KernelIO) {
        let len = lines.len, inner = lines.inner
        lines.forEach(io) { xs, ys in
            var m = -Float.infinity
            for k in 0..<len { m = max(m, xs[k * inner]) }
            var sum: Double = 0
            for k in 0..<len { sum += Double(Foundation.exp(xs[k * inner] - m)) }
            let lse = Float(Foundation.log(sum))
            for k in 0..<len { ys[k * inner] = (xs[k * inner] - m) - lse }
        }
    }
}

/// The Reduce family: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceSumSquare,
/// ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp. Axes as attribute (before opset 18; ReduceSum
/// before 13) or input, keepdims, noop_with_empty_axes (the input unchanged for the ops where one
/// element reduces to itself; elementwise |x|, x^2, log x for L1/L2, SumSquare, LogSum, as ONNX's
/// reference). Each output is reduced by one thread in a fixed order: sums accumulate in double
/// (float32 ReduceSum/ReduceMean over contiguous runs of 16 or more: 16-lane float blocks of 512,
/// added in double), so results do not depend on the thread count or the batch.
enum ReduceOp: Operator {
    static let opTypes = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
                          "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"]
    /// The ops whose reduction of one element is the element itself (noop_with_empty_axes copies).
    static let identityOnOne: Set<String> = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceLogSumExp"]

    /// Whether axes come from input 1 at `opset` (ReduceSum from opset 13, the others from 18).
    static func axesAsInput(_ op: String, _ opset: Int) -> Bool { op == "ReduceSum" ? opset >= 13 : opset >= 18 }

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let op = ctx.node.opType
        let axesAsInput = axesAsInput(op, ctx.opset)
        try ctx.arity(inputs: 1, axesAsInput ? 2 : 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: op == "ReduceMax" || op == "ReduceMin" ? arithmeticDTypes.union([.bool]) : arithmeticDTypes)
        var axes: [Int] = []
        if axesAsInput {
            if ctx.has(1) { axes = try ctx.intValues(1, "axes") }
        } else {
            axes = try ctx.ints("axes") ?? []
        }
        let keep = try ctx.int("keepdims", 1) != 0
        if axes.isEmpty {
            if try ctx.int("noop_with_empty_axes", 0) != 0 {
                if identityOnOne.contains(op) { return OpBuild(outputs: [x], kernel: CopyKernel(bytes: x.byteCount)) }
            } else {
                axes = Array(0..<x.rank)
            }
        }
        var reduced = Set<Int>()
        for a in axes {
            let v = try ctx.axis(a, rank: x.rank, "axis")
            guard reduced.insert(v).inserted else { throw ctx.error("axis \(a) is listed twice") }
        }
        var out: [Int] = []
        for d in 0..<x.rank {
            if reduced.contains(d) { if keep { out.append(1) } } else { out.append(x.shape[d]) }
        }
        // Iterate kept dims outside, reduced dims inside: strides of x in both orders.
        let st = Shapes.strides(x.shape)
        let keptDims = (0..<x.rank).filter { !reduced.contains($0) }
        let redDims = (0..<x.rank).filter { reduced.contains($0) }
        return OpBuild(outputs: [TensorSpec(x.dtype, out)],
                       kernel: ReduceKernel(op: op, dtype: x.dtype, keptShape: keptDims.map { x.shape[$0] },
                                            keptStrides: keptDims.map { st[$0] }, redShape: redDims.map { x.shape[$0] },
                                            redStrides: redDims.map { st[$0] }))
    }
}

struct ReduceKernel: Kernel {
    enum Kind { case sum, mean, max, min, prod, sumSquare, l1, l2, logSum, logSumExp }
    let kind: Kind
    let dtype: DType
    /// Offsets of each output's first input element, and of the reduced sub-space from it.
    let outs: [Int]
    let reds: [Int]
    /// The reduced sub-space as contiguous runs: the offsets where runs start (the reduced axes
    /// before the trailing contiguous ones) and the length of a run (the trailing reduced axes whose
    /// strides make one contiguous block, 1 if the innermost reduced axis is strided).
    let runStarts: [Int]
    let runLength: Int

    static let kinds: [String: Kind] = ["ReduceSum": .sum, "ReduceMean": .mean, "ReduceMax": .max, "ReduceMin": .min,
                                        "ReduceProd": .prod, "ReduceSumSquare": .sumSquare, "ReduceL1": .l1,
                                        "ReduceL2": .l2, "ReduceLogSum": .logSum, "ReduceLogSumExp": .logSumExp]

    init(op: String, dtype: DType, keptShape: [Int], keptStrides: [Int], redShape: [Int], redStrides: [Int]) {
        kind = Self.kinds[op] ?? .sum
        self.dtype = dtype
        outs = Self.offsets(keptShape, keptStrides)
        reds = Self.offsets(redShape, redStrides)
        var length = 1, lead = redShape.count
        while lead > 0, redStrides[lead - 1] == length {
            length *= redShape[lead - 1]
            lead -= 1
        }
        runLength = length
        runStarts = Self.offsets(Array(redShape[..<lead]), Array(redStrides[..<lead]))
    }

    /// Offsets of every element of a strided sub-space, in row-major order.
    static func offsets(_ shape: [Int], _ strides: [Int]) -> [Int] {
        var offs = [0]
        for (n, s) in zip(shape, strides) {
            var next: [Int] = []
            next.reserveCapacity(offs.count * n)
            for o in offs { for i in 0..<n { next.append(o + i * s) } }
            offs = next
        }
        return offs
    }

    func run(_ io: KernelIO) {
        if dtype == .bool { go(UInt8.self, io) } else { withArithType(dtype) { go($0, io) } }
    }

    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.output(0, T.self)
        let outs = outs, reds = reds, kind = kind
        let isFloat = T.self == Float.self || T.self == Double.self
        let chunk = max(1, 16384 / max(reds.count, 1))
        if T.self == Float.self, kind == .sum || kind == .mean, runLength >= 16 {
            // contiguous runs: 16-lane float blocks added in double (`blockSum`), a fixed order
            let xf = io.input(0, Float.self), yf = io.output(0, Float.self)
            let starts = runStarts, length = runLength, count = Double(reds.count)
            io.pool.parallelFor((outs.count + chunk - 1) / chunk, elements: outs.count * reds.count) { ch, _ in
                for o in (ch * chunk)..<min(outs.count, (ch + 1) * chunk) {
                    var s = 0.0
                    for r in starts { s += blockSum(xf + outs[o] + r, length) }
                    yf[o] = Float(kind == .mean ? s / count : s)
                }
            }
            return
        }
        io.pool.parallelFor((outs.count + chunk - 1) / chunk, elements: outs.count * reds.count) { ch, _ in
            for o in (ch * chunk)..<min(outs.count, (ch + 1) * chunk) {
                let base = x + outs[o]
                switch kind {
                case .max:
                    var m = T.lowest
                    for r in reds { m = T.maximum(m, base[r]) }
                    y[o] = m
                case .min:
                    var m = T.highest
                    for r in reds { m = T.minimum(m, base[r]) }
                    y[o] = m
                default:
                    if isFloat || !(kind == .sum || kind == .mean || kind == .prod) {
                        y[o] = T(fromDouble: Self.accumulate(kind, base, reds))
                        continue
                    }
                    // integers: wrapping arithmetic in the type
                    var s = T(fromDouble: kind == .prod ? 1 : 0)
                    for r in reds { s = kind == .prod ? T.mul(s, base[r]) : T.add(s, base[r]) }
                    y[o] = kind == .mean ? T.div(s, T(fromDouble: Double(reds.count))) : s
                }
            }
        }
    }

    /// One output of a sum-like or product reduction, accumulated in double in the order of `reds`.
    @inline(__always) static func accumulate<T: ArithScalar>(_ kind: Kind, _ base: UnsafePointer<T>, _ reds: [Int]) -> Double {
        switch kind {
        case .prod:
            var p = 1.0
            for r in reds { p *= base[r].asDouble }
            return p
        case .logSumExp:
            var m = -Double.infinity
            for r in reds {
                let v = base[r].asDouble
                if v.isNaN { return v }
                m = Swift.max(m, v)
            }
            if !m.isFinite { return m }
            var s = 0.0
            for r in reds { s += Foundation.exp(base[r].asDouble - m) }
            return m + Foundation.log(s)
        default:
            var s = 0.0
            switch kind {
            case .l1: for r in reds { s += Swift.abs(base[r].asDouble) }
            case .l2, .sumSquare: for r in reds { let v = base[r].asDouble; s += v * v }
            default: for r in reds { s += base[r].asDouble }
            }
            switch kind {
            case .mean: return s / Double(reds.count)
            case .l2: return s.squareRoot()
            case .logSum: return Foundation.log(s)
            default: return s
            }
        }
    }
}

// MARK: - Forward-mode rules

extension SoftmaxOp: ForwardDifferentiable {
    /// dy = y (d - sum(y d)) along the axis.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        let y = r.output(0), rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", -1)
        if axis < 0 { axis += rank }
        let s = r.reduce("ReduceSum", r.mul(y, d), axes: [axis])
        return [r.mul(y, r.sub(d, s))]
    }
}

extension LogSoftmaxOp: ForwardDifferentiable {
    /// dy = d - sum(exp(y) d) along the axis.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        let y = r.output(0), rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", -1)
        if axis < 0 { axis += rank }
        return [r.sub(d, r.reduce("ReduceSum", r.mul(r.emit("Exp", [y]), d), axes: [axis]))]
    }
}

extension ReduceOp: ForwardDifferentiable {
    /// ReduceSum and ReduceMean are linear (the same op of the tangent); the others reduce the
    /// tangent times the local derivative (`localDerivative`) with ReduceSum over the same axes.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        let op = r.node.opType
        if op == "ReduceSum" || op == "ReduceMean" { return [r.sameOp([0: d])[0]] }
        guard let xs = r.inputs[0] else { return [nil] }
        let (axes, keep) = try reduced(r, rank: xs.rank)
        let w = localDerivative(r, axes: axes, keep: keep)
        return [axes.isEmpty ? r.mul(w, d) : r.reduce("ReduceSum", r.mul(w, d), axes: axes, keepdims: keep)]
    }
}

// MARK: - Reverse-mode rules

extension SoftmaxOp: ReverseDifferentiable {
    /// dx = y (g - sum(g y)) along the axis.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil] }
        let y = r.output(0), rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", -1)
        if axis < 0 { axis += rank }
        return [r.mul(y, r.sub(g, r.reduce("ReduceSum", r.mul(g, y), axes: [axis])))]
    }
}

extension LogSoftmaxOp: ReverseDifferentiable {
    /// dx = g - exp(y) sum(g) along the axis.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil] }
        let y = r.output(0), rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", -1)
        if axis < 0 { axis += rank }
        return [r.sub(g, r.mul(r.emit("Exp", [y]), r.reduce("ReduceSum", g, axes: [axis])))]
    }
}

extension ReduceOp: ReverseDifferentiable {
    /// ReduceSum: the cotangent broadcast back over the reduced axes; ReduceMean: divided by the
    /// number of elements reduced; the others: broadcast and times the local derivative.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        var out: [String?] = r.node.inputs.map { _ in nil }
        guard let g = r.cotangent(), r.needs(0), let xs = r.inputs[0] else { return out }
        let op = r.node.opType
        let (axes, keep) = try reduced(r, rank: xs.rank)
        let kept = keep || axes.isEmpty ? g : r.emit("Unsqueeze", [g, r.ints(axes)])
        let scaled: String
        switch op {
        case "ReduceSum": scaled = kept
        case "ReduceMean": scaled = axes.isEmpty ? kept : r.div(kept, r.count(of: r.input(0), axes: axes))
        default: scaled = r.mul(kept, localDerivative(r, axes: axes, keep: keep))
        }
        out[0] = r.emit("Expand", [scaled, r.shape(r.input(0))])
        return out
    }
}

extension ReduceOp {
    /// The node's reduced axes, in range and sorted ([] for noop_with_empty_axes with no axes:
    /// the op is then elementwise), and keepdims.
    static func reduced(_ r: some RuleEmitter, rank: Int) throws -> (axes: [Int], keep: Bool) {
        let op = r.node.opType
        var axes: [Int] = []
        if axesAsInput(op, r.opset) {
            if r.has(1) {
                guard let v = r.constantInts(1) else { throw r.error("op \(op): axes must be a constant to differentiate") }
                axes = v
            }
        } else {
            axes = try r.intsAttribute("axes") ?? []
        }
        if axes.isEmpty, try r.intAttribute("noop_with_empty_axes", 0) == 0 { axes = Array(0..<rank) }
        return (axes.map { $0 < 0 ? $0 + rank : $0 }.sorted(), try r.intAttribute("keepdims", 1) != 0)
    }

    /// dy/dx elementwise, shaped to broadcast to x (y with the reduced axes kept as 1):
    /// SumSquare 2x; L1 sign(x); L2 x / y; LogSum 1 / exp(y); LogSumExp exp(x - y); Prod y / x;
    /// Max and Min the indicator of the elements equal to y, divided by their count (ties share
    /// the derivative equally).
    static func localDerivative(_ r: some RuleEmitter, axes: [Int], keep: Bool) -> String {
        let x = r.input(0)
        let y = keep || axes.isEmpty ? r.output(0) : r.emit("Unsqueeze", [r.output(0), r.ints(axes)])
        let to = Attribute("to", .int(r.floatType == .float64 ? 11 : 1))
        switch r.node.opType {
        case "ReduceSumSquare": return r.mul(r.scalar(2), x)
        case "ReduceL1":
            let zero = r.scalar(0)
            return r.sub(r.emit("Cast", [r.emit("Greater", [x, zero])], [to]), r.emit("Cast", [r.emit("Less", [x, zero])], [to]))
        case "ReduceL2": return r.div(x, y)
        case "ReduceLogSum": return r.emit("Reciprocal", [r.emit("Exp", [y])])
        case "ReduceLogSumExp": return r.emit("Exp", [r.sub(x, y)])
        case "ReduceProd": return r.div(y, x)
        default:
            let mask = r.emit("Cast", [r.emit("Equal", [x, y])], [to])
            return axes.isEmpty ? mask : r.div(mask, r.reduce("ReduceSum", mask, axes: axes))
        }
    }
}

/// ArgMax and ArgMin along one axis (opset 13 semantics): keepdims, select_last_index (the last
/// index of a tie instead of the first); int64 output. No derivative: the output is an index.
enum ArgOp: Operator {
    static let opTypes = ["ArgMax", "ArgMin"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: arithmeticDTypes)
        guard x.rank > 0 else { throw ctx.error("input must have rank 1 or more") }
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let keep = try ctx.int("keepdims", 1) != 0
        let last = try ctx.int("select_last_index", 0) != 0
        let len = x.shape[axis]
        guard len > 0 else { throw ctx.error("axis \(axis) has no elements to pick from") }
        var out = x.shape
        if keep { out[axis] = 1 } else { out.remove(at: axis) }
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.count / (len * inner)
        return OpBuild(outputs: [TensorSpec(.int64, out)],
                       kernel: ArgKernel(isMax: ctx.node.opType == "ArgMax", last: last, dtype: x.dtype,
                                         outer: outer, len: len, inner: inner))
    }
}

struct ArgKernel: Kernel {
    let isMax, last: Bool
    let dtype: DType
    let outer, len, inner: Int

    func run(_ io: KernelIO) { withArithType(dtype) { go($0, io) } }

    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.output(0, Int64.self)
        let lines = outer * inner, len = len, inner = inner, isMax = isMax, last = last
        let chunk = max(1, 16384 / len)
        io.pool.parallelFor((lines + chunk - 1) / chunk, elements: lines * len) { ch, _ in
            for l in (ch * chunk)..<min(lines, (ch + 1) * chunk) {
                let base = x + (l / inner) * len * inner + l % inner
                var best = base[0], at = 0
                for k in 1..<max(len, 1) {
                    let v = base[k * inner]
                    if isMax ? (v > best || (last && v == best)) : (v < best || (last && v == best)) {
                        best = v
                        at = k
                    }
                }
                y[l] = Int64(at)
            }
        }
    }
}

extension ArgOp: ForwardDifferentiable {
    /// An index: no tangent.
    static func jvp(_ r: JVPRule) throws -> [String?] { [nil] }
}

extension ArgOp: ReverseDifferentiable {
    /// An index: no cotangent flows back.
    static func vjp(_ r: VJPRule) throws -> [String?] { [nil] }
}
