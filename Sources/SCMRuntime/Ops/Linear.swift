import CBLAS
import SCMGraph

/// SGEMM on row-major matrices: C = alpha * op(A) op(B) + beta * C. Single-threaded BLAS calls;
/// parallelism comes from our own fixed-size chunks, so results do not depend on the thread count.
@inline(__always) func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    _ = BLAS.configure
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// One-time BLAS set-up: its own threads off (we parallelize above it), and stopped: OpenBLAS
/// starts them when it is loaded and they spin for a tenth of a second or so before sleeping,
/// which took one of two cores away from the first evaluations of every process (measured in
/// `perf`: 3-4% of a one-second scm-infer run went to that thread's sched_yield loop).
public enum BLAS {
    static let configure: Void = {
        openblas_set_num_threads(1)
        blas_thread_shutdown_()
    }()
    /// The kernel family OpenBLAS selected for this CPU (e.g. "Haswell", "Zen", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }
}

/// Columns of output per GEMM chunk: fixed, so chunking is independent of the thread count.
let gemmColumnChunk = 512

/// Y[m, n] = alpha op(A) op(B) + beta Y with one SGEMM per row of Y (and column chunk), spread
/// over the pool. A row's result does not depend on how many rows there are (BLAS kernels round
/// the rows of a block and the leftover rows differently), so when rows are samples a sample
/// gives the same bytes whatever the batch size. Used by Gemm and 2-D MatMul.
func sgemmByRows(transA ta: Bool, transB tb: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>,
                 b: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    let colChunks = (n + gemmColumnChunk - 1) / gemmColumnChunk
    pool.parallelFor(m * colChunks) { ch, _ in
        let i = ch / colChunks, j0 = (ch % colChunks) * gemmColumnChunk, nn = min(gemmColumnChunk, n - j0)
        sgemm(transA: ta, transB: tb, m: 1, n: nn, k: k, alpha: alpha, a: a + (ta ? i : i * k), lda: ta ? m : k,
              b: b + (tb ? j0 * k : j0), ldb: tb ? k : n, beta: beta, c: y + i * n + j0, ldc: n)
    }
}

/// Gemm(A, B, C?) with transA, transB, alpha, beta; C broadcast to [M, N].
enum GemmOp: Operator {
    static let opTypes = ["Gemm"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 3)
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.require(a, in: [.float])
        try ctx.require(b, in: [.float])
        guard a.rank == 2, b.rank == 2 else { throw ctx.error("A and B must be 2-D, are \(a.shape) and \(b.shape)") }
        let ta = try ctx.int("transA", 0) != 0, tb = try ctx.int("transB", 0) != 0
        let m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1]
        let kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1]
        guard k == kb else { throw ctx.error("inner dims differ: A \(a.shape) transA=\(ta), B \(b.shape) transB=\(tb)") }
        var cLoop: BroadcastLoop? = nil
        if let c = ctx.optionalInput(2) {
            try ctx.require(c, in: [.float])
            guard Shapes.broadcast(c.shape, [m, n]) == [m, n] else { throw ctx.error("C \(c.shape) does not broadcast to [\(m), \(n)]") }
            cLoop = BroadcastLoop(output: [m, n], inputs: [c.shape, c.shape])
        }
        return OpBuild(outputs: [TensorSpec(.float, [m, n])],
                       kernel: GemmKernel(m: m, n: n, k: k, ta: ta, tb: tb, alpha: try ctx.float("alpha", 1),
                                          beta: try ctx.float("beta", 1), c: cLoop),
                       flops: 2 * m * n * k)
    }
}

struct GemmKernel: Kernel {
    let m, n, k: Int
    let ta, tb: Bool
    let alpha, beta: Float
    let c: BroadcastLoop?

    func run(_ io: KernelIO) {
        let a = io.input(0, Float.self), b = io.input(1, Float.self), y = io.output(0, Float.self)
        var beta1: Float = 0
        if let c, beta != 0 {
            c.run2(CopyFirstFn<Float>.self, io.input(2, Float.self), io.input(2, Float.self), y, io.pool)
            if beta != 1 { for i in 0..<(m * n) { y[i] *= beta } }
            beta1 = 1
        }
        // Gemm's rows are usually samples.
        sgemmByRows(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta1, y: y, pool: io.pool)
    }
}

/// MatMul with numpy semantics: 1-D operands promoted and squeezed, batch dims broadcast.
enum MatMulOp: Operator {
    static let opTypes = ["MatMul"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.require(a, in: [.float])
        try ctx.require(b, in: [.float])
        guard a.rank >= 1, b.rank >= 1 else { throw ctx.error("operands must have rank >= 1") }
        let aS = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bS = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let m = aS[aS.count - 2], k = aS[aS.count - 1], n = bS[bS.count - 1]
        guard bS[bS.count - 2] == k else { throw ctx.error("inner dims differ: \(a.shape) x \(b.shape)") }
        guard let batch = Shapes.broadcast(Array(aS.dropLast(2)), Array(bS.dropLast(2))) else {
            throw ctx.error("batch dims of \(a.shape) and \(b.shape) do not broadcast")
        }
        var out = batch
        if a.rank > 1 { out.append(m) }
        if b.rank > 1 { out.append(n) }
        let nb = batch.reduce(1, *)
        // Element offsets of each batch's A and B matrices.
        let sa = Shapes.broadcastStrides(from: Array(aS.dropLast(2)), to: batch)
        let sb = Shapes.broadcastStrides(from: Array(bS.dropLast(2)), to: batch)
        var offA: [Int] = [], offB: [Int] = []
        for i in 0..<nb {
            var rem = i, oa = 0, ob = 0
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                let idx = rem % batch[d]
                rem /= batch[d]
                oa += idx * sa[d]
                ob += idx * sb[d]
            }
            offA.append(oa * m * k)
            offB.append(ob * k * n)
        }
        return OpBuild(outputs: [TensorSpec(.float, out)],
                       kernel: MatMulKernel(m: m, n: n, k: k, offA: offA, offB: offB, rowWise: a.rank == 2),
                       flops: 2 * nb * m * n * k)
    }
}

struct MatMulKernel: Kernel {
    let m, n, k: Int
    let offA, offB: [Int]
    /// A is 2-D, so its rows are usually samples ([N, K] x [K, D], a linear layer): one SGEMM
    /// per row, as in Gemm (`sgemmByRows`). With 3-D and larger A, each matrix of the batch is
    /// its own SGEMM already.
    let rowWise: Bool

    func run(_ io: KernelIO) {
        let a = io.input(0, Float.self), b = io.input(1, Float.self), y = io.output(0, Float.self)
        if rowWise {
            sgemmByRows(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, b: b + offB[0], beta: 0, y: y, pool: io.pool)
            return
        }
        let colChunks = (n + gemmColumnChunk - 1) / gemmColumnChunk
        io.pool.parallelFor(offA.count * colChunks) { ch, _ in
            let bi = ch / colChunks, j0 = (ch % colChunks) * gemmColumnChunk, nn = min(gemmColumnChunk, n - j0)
            sgemm(transA: false, transB: false, m: m, n: nn, k: k, alpha: 1, a: a + offA[bi], lda: k,
                  b: b + offB[bi] + j0, ldb: n, beta: 0, c: y + bi * m * n + j0, ldc: n)
        }
    }
}

// MARK: - Forward-mode rules

extension GemmOp: ForwardDifferentiable {
    /// Y = alpha A' B' + beta C: dY = alpha (dA' B' + A' dB') + beta dC, each product a Gemm with
    /// the node's transA, transB and alpha.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let attrs = r.attributes(removing: ["beta"])
        let a = r.input(0), b = r.input(1)
        var terms: [String?] = [
            r.tangent(0).map { r.emit("Gemm", [$0, b], attrs) },
            r.tangent(1).map { r.emit("Gemm", [a, $0], attrs) },
        ]
        if r.has(2), let dc = r.tangent(2) {
            var beta: Double = 1
            if let v = r.node.attribute("beta"), case .float(let f) = v.value { beta = Double(f) }
            let c = beta == 1 ? dc : r.mul(dc, r.scalar(beta))
            terms.append(terms.contains { $0 != nil } ? c : r.broadcast(c, input: 2))
        }
        return [r.sum(terms)]
    }
}

extension MatMulOp: ForwardDifferentiable {
    /// dY = dA B + A dB (both products have Y's shape: MatMul broadcasts the batch dims).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let a = r.input(0), b = r.input(1)
        return [r.add(r.tangent(0).map { r.emit("MatMul", [$0, b]) }, r.tangent(1).map { r.emit("MatMul", [a, $0]) })]
    }
}

// MARK: - Reverse-mode rules

extension GemmOp: ReverseDifferentiable {
    /// Y = alpha A' B' + beta C (A' = A or its transpose, likewise B'): with G the cotangent,
    /// dA' = alpha G B'^T and dB' = alpha A'^T G, each one Gemm with the transposes folded in;
    /// dC = beta G summed over C's broadcast axes.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil, nil] }
        let a = r.input(0), b = r.input(1)
        let ta = try r.intAttribute("transA", 0) != 0, tb = try r.intAttribute("transB", 0) != 0
        let alpha = try r.floatAttribute("alpha", 1), beta = try r.floatAttribute("beta", 1)
        func gemm(_ x: String, _ y: String, _ tx: Bool, _ ty: Bool) -> String {
            var attrs: [Attribute] = []
            if tx { attrs.append(Attribute("transA", .int(1))) }
            if ty { attrs.append(Attribute("transB", .int(1))) }
            if alpha != 1 { attrs.append(Attribute("alpha", .float(Float(alpha)))) }
            return r.emit("Gemm", [x, y], attrs)
        }
        var da: String? = nil, db: String? = nil, dc: String? = nil
        if r.needs(0) {
            // A' = A: dA = G B'^T;  A' = A^T: dA = B' G^T.
            da = ta ? (tb ? gemm(b, g, true, true) : gemm(b, g, false, true)) : (tb ? gemm(g, b, false, false) : gemm(g, b, false, true))
        }
        if r.needs(1) {
            // B' = B: dB = A'^T G;  B' = B^T: dB = G^T A'.
            db = tb ? (ta ? gemm(g, a, true, true) : gemm(g, a, true, false)) : (ta ? gemm(a, g, false, false) : gemm(a, g, true, false))
        }
        if r.has(2), r.needs(2) {
            dc = r.unbroadcast(beta == 1 ? g : r.mul(g, r.scalar(beta)), toInput: 2)
        }
        return Array([da, db, dc].prefix(r.node.inputs.count))
    }
}

extension MatMulOp: ReverseDifferentiable {
    /// dA = G B^T and dB = A^T G over the last two axes, summed over broadcast batch axes.
    /// 1-D operands have no rule yet.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil] }
        guard let sa = r.inputs[0], let sb = r.inputs[1], sa.rank >= 2, sb.rank >= 2 else {
            throw r.error("MatMul with a 1-D operand has no reverse-mode (VJP) rule")
        }
        func t(_ v: String, rank: Int) -> String {
            r.emit("Transpose", [v], [Attribute("perm", .ints(Array(0..<(rank - 2)) + [rank - 1, rank - 2]))])
        }
        let batch = Array(r.outputs[0].shape.dropLast(2))
        let da = r.needs(0) ? r.unbroadcast(r.emit("MatMul", [g, t(r.input(1), rank: sb.rank)]), toInput: 0,
                                            from: batch + sa.shape.suffix(2)) : nil
        let db = r.needs(1) ? r.unbroadcast(r.emit("MatMul", [t(r.input(0), rank: sa.rank), g]), toInput: 1,
                                            from: batch + sb.shape.suffix(2)) : nil
        return [da, db]
    }
}
