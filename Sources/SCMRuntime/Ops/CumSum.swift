import Foundation
import SCMGraph

/// CumSum along the axis given by input 1 (a constant scalar), exclusive and reverse (opset 14
/// semantics). Each line is summed by one thread in its own order (floats accumulate in double),
/// so results do not depend on the thread count or the batch. Linear: the JVP is the same CumSum
/// of the tangent, the VJP the CumSum of the cotangent in the other direction.
enum CumSumOp: Operator {
    static let opTypes = ["CumSum"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0)
        try ctx.require(x, in: arithmeticDTypes)
        let axisValues = try ctx.intValues(1, "axis")
        guard axisValues.count == 1 else { throw ctx.error("axis must be a scalar, has \(axisValues.count) values") }
        guard x.rank > 0 else { throw ctx.error("input must have rank 1 or more") }
        let axis = try ctx.axis(axisValues[0], rank: x.rank)
        let len = x.shape[axis]
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        let outer = len * inner == 0 ? 0 : x.count / (len * inner)
        return OpBuild(outputs: [x], kernel: CumSumKernel(dtype: x.dtype, outer: outer, len: len, inner: inner,
                                                          exclusive: try ctx.int("exclusive", 0) != 0,
                                                          reverse: try ctx.int("reverse", 0) != 0))
    }
}

struct CumSumKernel: Kernel {
    let dtype: DType
    let outer, len, inner: Int
    let exclusive, reverse: Bool

    func run(_ io: KernelIO) { withArithType(dtype) { go($0, io) } }

    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.output(0, T.self)
        let lines = outer * inner, len = len, inner = inner, exclusive = exclusive, reverse = reverse
        let isFloat = T.self == Float.self || T.self == Double.self
        let chunk = max(1, 16384 / max(len, 1))
        io.pool.parallelFor((lines + chunk - 1) / chunk, elements: lines * len) { ch, _ in
            for l in (ch * chunk)..<min(lines, (ch + 1) * chunk) {
                let off = (l / inner) * len * inner + l % inner
                let xs = x + off, ys = y + off
                var d = 0.0, s = T(fromDouble: 0)
                for step in 0..<len {
                    let k = (reverse ? len - 1 - step : step) * inner
                    let v = xs[k]
                    if exclusive { ys[k] = isFloat ? T(fromDouble: d) : s }
                    if isFloat { d += v.asDouble } else { s = T.add(s, v) }
                    if !exclusive { ys[k] = isFloat ? T(fromDouble: d) : s }
                }
            }
        }
    }
}

extension CumSumOp: ForwardDifferentiable {
    /// Linear in x: the same CumSum of the tangent.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        return [r.sameOp([0: d])[0]]
    }
}

extension CumSumOp: ReverseDifferentiable {
    /// The adjoint of a cumulative sum is the cumulative sum in the other direction (exclusive
    /// stays exclusive).
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil, nil] }
        let reverse = try r.intAttribute("reverse", 0) != 0
        let attrs = r.attributes(removing: ["reverse"]) + [Attribute("reverse", .int(reverse ? 0 : 1))]
        return [r.emit("CumSum", [g, r.input(1)], attrs), nil]
    }
}
