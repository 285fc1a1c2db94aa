import Foundation
import SCMGraph

/// Trilu (opset 14): the upper (upper = 1, the default) or lower triangle of the last two dims,
/// from diagonal k (input 1, a constant scalar; 0 when absent); the rest zero. Any dtype: the
/// kernel copies or zeroes elements by their size. Linear: the same Trilu of tangent and cotangent.
enum TriluOp: Operator {
    static let opTypes = ["Trilu"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 2)
        let x = try ctx.input(0)
        guard x.rank >= 2 else { throw ctx.error("input must have rank 2 or more, has \(x.rank)") }
        var k = 0
        if ctx.has(1) {
            let v = try ctx.intValues(1, "k")
            guard v.count == 1 else { throw ctx.error("k must be a scalar, has \(v.count) values") }
            k = v[0]
        }
        let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1]
        return OpBuild(outputs: [x], kernel: TriluKernel(upper: try ctx.int("upper", 1) != 0, k: k, rows: rows, cols: cols,
                                                         matrices: rows * cols == 0 ? 0 : x.count / (rows * cols),
                                                         size: x.byteCount / max(x.count, 1)))
    }
}

struct TriluKernel: Kernel {
    let upper: Bool
    let k, rows, cols, matrices, size: Int

    func run(_ io: KernelIO) {
        let x = io.rawInput(0), y = io.rawOutput(0)
        let upper = upper, k = k, rows = rows, cols = cols, size = size
        let total = matrices * rows
        let chunk = max(1, 16384 / max(cols, 1))
        io.pool.parallelFor((total + chunk - 1) / chunk, elements: total * cols) { ch, _ in
            for row in (ch * chunk)..<min(total, (ch + 1) * chunk) {
                let i = row % rows, base = row * cols * size
                // kept columns: j >= i + k (upper) or j <= i + k (lower)
                let lo = upper ? min(max(i + k, 0), cols) : 0
                let hi = upper ? cols : min(max(i + k + 1, 0), cols)
                if lo > 0 { (y + base).initializeMemory(as: UInt8.self, repeating: 0, count: lo * size) }
                if hi > lo { (y + base + lo * size).copyMemory(from: x + base + lo * size, byteCount: (hi - lo) * size) }
                if hi < cols { (y + base + hi * size).initializeMemory(as: UInt8.self, repeating: 0, count: (cols - hi) * size) }
            }
        }
    }
}

extension TriluOp: ForwardDifferentiable {
    /// Linear in x: the same Trilu of the tangent.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        return [r.sameOp([0: d])[0]]
    }
}

extension TriluOp: ReverseDifferentiable {
    /// A mask is its own adjoint: the same Trilu of the cotangent.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        var out: [String?] = r.node.inputs.map { _ in nil }
        guard let g = r.cotangent(), r.needs(0) else { return out }
        out[0] = r.sameOp([0: g])[0]
        return out
    }
}
