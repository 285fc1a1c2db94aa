import Foundation
import SCMGraph

/// Softmax along one axis (opset 13 semantics), max-subtracted.
enum SoftmaxOp: Operator {
    static let opTypes = ["Softmax"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let len = x.rank == 0 ? 1 : x.shape[axis]
        let inner = x.rank == 0 ? 1 : x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.count / max(1, len * inner)
        return OpBuild(outputs: [x], kernel: SoftmaxKernel(outer: outer, len: len, inner: inner), inPlace: [0])
    }
}

struct SoftmaxKernel: Kernel {
    let outer, len, inner: Int
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        let lines = outer * inner, len = len, inner = inner
        let chunk = max(1, 8192 / max(len, 1))
        io.pool.parallelFor((lines + chunk - 1) / chunk, elements: lines * len) { ch, _ in
            for l in (ch * chunk)..<min(lines, (ch + 1) * chunk) {
                let o = l / inner, i = l % inner
                let xs = x + o * len * inner + i, ys = y + o * len * inner + i
                if inner == 1 {
                    softmaxLine(xs, ys, len)
                    continue
                }
                var m = -Float.infinity
                for k in 0..<len { m = max(m, xs[k * inner]) }
                var sum: Float = 0
                do {
                    for k in 0..<len {
                        let e = exp1(xs[k * inner] - m)
                        ys[k * inner] = e
                        sum += e
                    }
                }
                let inv = 1 / sum
                for k in 0..<len { ys[k * inner] *= inv }
            }
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
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: [.float])
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let len = x.rank == 0 ? 1 : x.shape[axis]
        let inner = x.rank == 0 ? 1 : x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.count / max(1, len * inner)
        return OpBuild(outputs: [x], kernel: LogSoftmaxKernel(outer: outer, len: len, inner: inner), inPlace: [0])
    }
}

/// Per line: m = max, y = (x - m) - log(sum exp(x - m)), the sum in double in index order.
struct LogSoftmaxKernel: Kernel {
    let outer, len, inner: Int
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        let lines = outer * inner, len = len, inner = inner
        let chunk = max(1, 8192 / max(len, 1))
        io.pool.parallelFor((lines + chunk - 1) / chunk, elements: lines * len) { ch, _ in
            for l in (ch * chunk)..<min(lines, (ch + 1) * chunk) {
                let o = l / inner, i = l % inner
                let xs = x + o * len * inner + i, ys = y + o * len * inner + i
                var m = -Float.infinity
                for k in 0..<len { m = max(m, xs[k * inner]) }
                var sum: Double = 0
                for k in 0..<len { sum += Double(Foundation.exp(xs[k * inner] - m)) }
                let lse = Float(Foundation.log(sum))
                for k in 0..<len { ys[k * inner] = (xs[k * inner] - m) - lse }
            }
        }
    }
}

/// ReduceMean, ReduceSum, ReduceMax: axes as attribute (ReduceMean/Max before opset 18) or input,
/// keepdims, noop_with_empty_axes. Sums accumulate in double (float32 over contiguous runs of 16 or
/// more: 16-lane float blocks of 512, added in double).
enum ReduceOp: Operator {
    static let opTypes = ["ReduceMean", "ReduceSum", "ReduceMax"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let op = ctx.node.opType
        let axesAsInput = op == "ReduceSum" ? ctx.opset >= 13 : ctx.opset >= 18
        try ctx.arity(inputs: 1, axesAsInput ? 2 : 1)
        let x = try ctx.input(0)
        try ctx.require(x, in: op == "ReduceMax" ? arithmeticDTypes.union([.bool]) : arithmeticDTypes)
        var axes: [Int] = []
        if axesAsInput {
            if ctx.has(1) { axes = try ctx.intValues(1, "axes") }
        } else {
            axes = try ctx.ints("axes") ?? []
        }
        let keep = try ctx.int("keepdims", 1) != 0
        if axes.isEmpty {
            if try ctx.int("noop_with_empty_axes", 0) != 0 {
                return OpBuild(outputs: [x], kernel: CopyKernel(bytes: x.byteCount))
            }
            axes = Array(0..<x.rank)
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
    let op: String
    let dtype: DType
    /// Offsets of each output's first input element, and of the reduced sub-space from it.
    let outs: [Int]
    let reds: [Int]
    /// The reduced sub-space as contiguous runs: the offsets where runs start (the reduced axes
    /// before the trailing contiguous ones) and the length of a run (the trailing reduced axes whose
    /// strides make one contiguous block, 1 if the innermost reduced axis is strided).
    let runStarts: [Int]
    let runLength: Int

    init(op: String, dtype: DType, keptShape: [Int], keptStrides: [Int], redShape: [Int], redStrides: [Int]) {
        self.op = op
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
        let outs = outs, reds = reds, isMax = op == "ReduceMax", isMean = op == "ReduceMean"
        let isFloat = T.self == Float.self || T.self == Double.self
        let chunk = max(1, 16384 / max(reds.count, 1))
        if T.self == Float.self, !isMax, runLength >= 16 {
            // contiguous runs: 16-lane float blocks added in double (`blockSum`), a fixed order
            let xf = io.input(0, Float.self), yf = io.output(0, Float.self)
            let starts = runStarts, length = runLength, count = Double(reds.count)
            io.pool.parallelFor((outs.count + chunk - 1) / chunk, elements: outs.count * reds.count) { ch, _ in
                for o in (ch * chunk)..<min(outs.count, (ch + 1) * chunk) {
                    var s = 0.0
                    for r in starts { s += blockSum(xf + outs[o] + r, length) }
                    yf[o] = Float(isMean ? s / count : s)
                }
            }
            return
        }
        io.pool.parallelFor((outs.count + chunk - 1) / chunk, elements: outs.count * reds.count) { ch, _ in
            for o in (ch * chunk)..<min(outs.count, (ch + 1) * chunk) {
                let base = x + outs[o]
                if isMax {
                    var m = T.lowest
                    for r in reds { m = T.maximum(m, base[r]) }
                    y[o] = m
                } else if isFloat {
                    var s = 0.0
                    for r in reds { s += base[r].asDouble }
                    y[o] = T(fromDouble: isMean ? s / Double(reds.count) : s)
                } else {
                    var s = T(fromDouble: 0)
                    for r in reds { s = T.add(s, base[r]) }
                    y[o] = isMean ? T.div(s, T(fromDouble: Double(reds.count))) : s
                }
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
    /// ReduceSum and ReduceMean are linear; ReduceMax has no rule.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard r.node.opType != "ReduceMax" else { throw r.error("op ReduceMax has no forward-mode (JVP) rule") }
        guard let d = r.tangent(0) else { return [nil] }
        return [r.sameOp([0: d])[0]]
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
    /// number of elements reduced. ReduceMax has no rule.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard r.node.opType != "ReduceMax" else { throw r.error("op ReduceMax has no reverse-mode (VJP) rule") }
        guard let g = r.cotangent(), r.needs(0), let xs = r.inputs[0] else { return r.node.inputs.map { _ in nil } }
        let op = r.node.opType
        let axesAsInput = op == "ReduceSum" ? r.opset >= 13 : r.opset >= 18
        var axes = (axesAsInput ? r.constantInts(1) : try r.intsAttribute("axes")) ?? []
        if axes.isEmpty {
            if try r.intAttribute("noop_with_empty_axes", 0) != 0 {
                var out: [String?] = r.node.inputs.map { _ in nil }
                out[0] = g
                return out
            }
            axes = Array(0..<xs.rank)
        }
        axes = axes.map { $0 < 0 ? $0 + xs.rank : $0 }.sorted()
        let kept = try r.intAttribute("keepdims", 1) != 0 ? g : r.emit("Unsqueeze", [g, r.ints(axes)])
        let scaled = op == "ReduceMean" ? r.div(kept, r.count(of: r.input(0), axes: axes)) : kept
        var out: [String?] = r.node.inputs.map { _ in nil }
        out[0] = r.emit("Expand", [scaled, r.shape(r.input(0))])
        return out
    }
}
