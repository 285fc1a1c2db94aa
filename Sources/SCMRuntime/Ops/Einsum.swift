import SCMGraph

/// Einsum(inputs...) with `equation` (ONNX opset 12+, numpy's semantics): explicit (`ij,jk->ik`)
/// or implicit output (the labels that occur once, in alphabetical order, after the ellipsis
/// dims), `...` broadcast dims, repeated labels within an operand (diagonals), labels summed
/// away. float32 and float64.
///
/// Two float32 operands without diagonals or labels summed from one operand alone (matrix
/// products, attention's `bhid,bhjd->bhij`, a linear layer `nk,kd->nd`) run as SGEMMs over the
/// batch labels, each operand read in place when its labels are already in (batch, rows,
/// contraction) order, else packed once into scratch; everything else (transposes such as
/// DiT's unpatchify `nhwpqc->nchpwq`, traces, sums, three or more operands) runs as one loop per
/// output element over the contracted labels, in a fixed order. Either way an output element's
/// arithmetic does not depend on the thread count, and when the output's first label is a batch
/// or row label, not on the other samples (rows are single SGEMMs, as in MatMul).
enum EinsumOp: Operator {
    static let opTypes = ["Einsum"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 64)
        let specs = try (0..<ctx.inputCount).map { try ctx.input($0) }
        let dtype = specs[0].dtype
        try ctx.require(specs[0], in: [.float, .float64])
        for (i, s) in specs.enumerated() where s.dtype != dtype {
            throw ctx.error("input \(i) is \(s.dtype), input 0 is \(dtype): the inputs must share one dtype")
        }
        let eq = try ctx.string("equation", "")
        let e: EinsumEquation
        do { e = try EinsumEquation(eq, shapes: specs.map(\.shape)) } catch let m as EinsumEquation.Failure {
            throw ctx.error("equation '\(eq)': \(m.message)")
        }
        let outShape = e.output.map { e.sizes[$0] }
        let spec = TensorSpec(dtype, outShape)
        let outCount = spec.count
        guard outCount <= ctx.maxElements else { throw ctx.error("output of \(outCount) elements is too large") }
        var contractCount = 1
        for l in e.contracted { contractCount *= e.sizes[l] }
        let flops = 2 * outCount * contractCount * max(1, specs.count - 1)
        if dtype == .float, let g = EinsumGEMM(e, shapes: specs.map(\.shape)) {
            return OpBuild(outputs: [spec], kernel: g, scratchBytes: g.scratchFloats * 4, flops: 2 * g.batch * g.m * g.n * g.k)
        }
        return OpBuild(outputs: [spec], kernel: EinsumLoopKernel(e, shapes: specs.map(\.shape), double: dtype == .float64),
                       flops: flops)
    }
}

/// A parsed equation: labels are small integers (letters 0..<52, ellipsis dims from 52 on).
struct EinsumEquation {
    struct Failure: Error { let message: String }

    /// Each operand's label per dim (repeated for diagonals).
    var terms: [[Int]]
    /// The output's labels.
    var output: [Int]
    /// Labels summed away (in no output dim), in order of first appearance.
    var contracted: [Int]
    /// Size of each label (indexed by label, 0 for unused).
    var sizes: [Int]
    /// The equation with its output made explicit and the ellipsis spelled as letters (`...`
    /// dims renamed to unused letters), for derivative rules; nil when no letters are left.
    var explicit: String?

    static let ellipsisBase = 52

    static func letter(_ c: Character) -> Int? {
        guard let a = c.asciiValue else { return nil }
        if a >= 97 && a <= 122 { return Int(a - 97) }
        if a >= 65 && a <= 90 { return Int(a - 65) + 26 }
        return nil
    }

    static func character(_ l: Int) -> Character {
        l < 26 ? Character(UnicodeScalar(UInt8(97 + l))) : Character(UnicodeScalar(UInt8(65 + l - 26)))
    }

    /// Letters and ellipsis markers (-1) of one term.
    static func parseTerm(_ s: Substring) throws -> [Int] {
        var out: [Int] = []
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == " " { i = s.index(after: i); continue }
            if c == "." {
                let rest = s[i...]
                guard rest.hasPrefix("...") else { throw Failure(message: "a '.' that is not part of '...'") }
                guard !out.contains(-1) else { throw Failure(message: "more than one '...' in a term") }
                out.append(-1)
                i = s.index(i, offsetBy: 3)
                continue
            }
            guard let l = letter(c) else { throw Failure(message: "'\(c)' is not a label (letters a-z, A-Z and '...')") }
            out.append(l)
            i = s.index(after: i)
        }
        return out
    }

    init(_ equation: String, shapes: [[Int]]) throws {
        guard !equation.isEmpty else { throw Failure(message: "attribute 'equation' is required") }
        let sides = equation.components(separatedBy: "->")
        guard sides.count <= 2 else { throw Failure(message: "more than one '->'") }
        let lhs = sides[0].split(separator: ",", omittingEmptySubsequences: false)
        guard lhs.count == shapes.count else {
            throw Failure(message: "\(lhs.count) operand terms for \(shapes.count) inputs")
        }
        let raw = try lhs.map(Self.parseTerm)
        // The ellipsis' rank per operand; its dims are labels right-aligned to the widest.
        var ellRanks: [Int] = []
        for (i, t) in raw.enumerated() {
            let letters = t.filter { $0 >= 0 }.count
            let e = shapes[i].count - letters
            if t.contains(-1) {
                guard e >= 0 else { throw Failure(message: "term \(i) has \(letters) labels for rank \(shapes[i].count)") }
                ellRanks.append(e)
            } else {
                guard e == 0 else { throw Failure(message: "term \(i) has \(letters) labels for rank \(shapes[i].count)") }
                ellRanks.append(0)
            }
        }
        let ellRank = ellRanks.max() ?? 0
        terms = []
        for (i, t) in raw.enumerated() {
            var labels: [Int] = []
            for l in t {
                if l >= 0 { labels.append(l) } else {
                    labels += ((ellRank - ellRanks[i])..<ellRank).map { Self.ellipsisBase + $0 }
                }
            }
            terms.append(labels)
        }
        // Sizes: equal across operands, or 1 (broadcast).
        sizes = [Int](repeating: 0, count: Self.ellipsisBase + ellRank)
        var seen = [Bool](repeating: false, count: sizes.count)
        for (i, t) in terms.enumerated() {
            for (d, l) in t.enumerated() {
                let s = shapes[i][d]
                if !seen[l] || sizes[l] == 1 {
                    if seen[l], sizes[l] == 1, s != 1, t.filter({ $0 == l }).count > 1 {
                        throw Failure(message: "label '\(Self.describe(l))' has sizes 1 and \(s)")
                    }
                    sizes[l] = s
                    seen[l] = true
                } else if s != sizes[l] && s != 1 {
                    throw Failure(message: "label '\(Self.describe(l))' has sizes \(sizes[l]) and \(s) (input \(i), dim \(d))")
                }
            }
            // A repeated label (diagonal) must have one size within its operand.
            for l in Set(t) where t.filter({ $0 == l }).count > 1 {
                let ds = t.indices.filter { t[$0] == l }.map { shapes[i][$0] }
                guard Set(ds).count == 1 else { throw Failure(message: "label '\(Self.describe(l))' repeated in term \(i) with sizes \(ds)") }
            }
        }
        let ellLabels = (0..<ellRank).map { Self.ellipsisBase + $0 }
        if sides.count == 2 {
            let o = try Self.parseTerm(Substring(sides[1]))
            var labels: [Int] = []
            for l in o {
                if l >= 0 {
                    guard seen.indices.contains(l), seen[l] else { throw Failure(message: "output label '\(Self.describe(l))' is in no input") }
                    guard !labels.contains(l) else { throw Failure(message: "output label '\(Self.describe(l))' repeated") }
                    labels.append(l)
                } else { labels += ellLabels }
            }
            output = labels
        } else {
            var counts = [Int](repeating: 0, count: Self.ellipsisBase)
            for t in terms { for l in t where l < Self.ellipsisBase { counts[l] += 1 } }
            // Alphabetical in ASCII order: uppercase (26...51) before lowercase (0...25).
            let once = (26..<52).filter { counts[$0] == 1 } + (0..<26).filter { counts[$0] == 1 }
            output = ellLabels + once
        }
        var c: [Int] = []
        for t in terms { for l in t where !output.contains(l) && !c.contains(l) { c.append(l) } }
        contracted = c
        // Explicit form: ellipsis dims renamed to letters no term uses.
        let used = Set(terms.joined()).filter { $0 < Self.ellipsisBase }
        let free = (0..<Self.ellipsisBase).filter { !used.contains($0) }
        if ellRank <= free.count {
            func spell(_ t: [Int]) -> String {
                String(t.map { $0 >= Self.ellipsisBase ? Self.character(free[$0 - Self.ellipsisBase]) : Self.character($0) })
            }
            explicit = terms.map(spell).joined(separator: ",") + "->" + spell(output)
        } else {
            explicit = nil
        }
    }

    static func describe(_ l: Int) -> String { l >= ellipsisBase ? "...(\(l - ellipsisBase))" : String(character(l)) }

    /// Element strides of operand `i` per label (summed for a repeated label, 0 where absent or
    /// broadcast from size 1).
    func strides(_ i: Int, shape: [Int]) -> [Int] {
        var s = [Int](repeating: 0, count: sizes.count)
        let st = Shapes.strides(shape)
        for (d, l) in terms[i].enumerated() where !(shape[d] == 1 && sizes[l] != 1) { s[l] += st[d] }
        return s
    }
}

/// The general form: per output element, the sum over the contracted labels of the product of
/// the operands' elements, in one fixed order.
struct EinsumLoopKernel: Kernel {
    let outSizes: [Int]
    let outStrides: [[Int]]   // per operand, per output dim
    let sumSizes: [Int]
    let sumStrides: [[Int]]   // per operand, per contracted label
    let operands: Int
    let double: Bool

    init(_ e: EinsumEquation, shapes: [[Int]], double: Bool) {
        let st = shapes.indices.map { e.strides($0, shape: shapes[$0]) }
        outSizes = e.output.map { e.sizes[$0] }
        outStrides = st.map { s in e.output.map { s[$0] } }
        sumSizes = e.contracted.map { e.sizes[$0] }
        sumStrides = st.map { s in e.contracted.map { s[$0] } }
        operands = shapes.count
        self.double = double
    }

    func run(_ io: KernelIO) {
        if double { go(Double.self, io) } else { go(Float.self, io) }
    }

    func go<T: BinaryFloatingPoint>(_: T.Type, _ io: KernelIO) {
        let count = outSizes.reduce(1, *)
        let inner = max(1, sumSizes.reduce(1, *) * operands)
        let per = max(1, 16384 / inner)
        let chunks = (count + per - 1) / per
        let ins = (0..<operands).map { io.input($0, T.self) }
        let y = io.output(0, T.self)
        let r = outSizes.count, cr = sumSizes.count
        let total = sumSizes.reduce(1, *)
        io.pool.parallelFor(chunks, elements: count * inner) { ch, _ in
            var base = [Int](repeating: 0, count: operands)
            var idx = [Int](repeating: 0, count: cr)
            var off = [Int](repeating: 0, count: operands)
            for o in (ch * per)..<min(count, (ch + 1) * per) {
                var rem = o
                for k in 0..<operands { base[k] = 0 }
                var d = r - 1
                while d >= 0 {
                    let i = rem % outSizes[d]
                    rem /= outSizes[d]
                    for k in 0..<operands { base[k] += i * outStrides[k][d] }
                    d -= 1
                }
                for j in 0..<cr { idx[j] = 0 }
                for k in 0..<operands { off[k] = base[k] }
                var acc: T = 0
                for _ in 0..<total {
                    var p: T = ins[0][off[0]]
                    for k in 1..<operands { p *= ins[k][off[k]] }
                    acc += p
                    // Odometer over the contracted labels, last fastest.
                    var j = cr - 1
                    while j >= 0 {
                        idx[j] += 1
                        for k in 0..<operands { off[k] += sumStrides[k][j] }
                        if idx[j] < sumSizes[j] { break }
                        for k in 0..<operands { off[k] -= sumStrides[k][j] * sumSizes[j] }
                        idx[j] = 0
                        j -= 1
                    }
                }
                y[o] = acc
            }
        }
    }
}

/// Two float32 operands as batched SGEMMs: labels grouped into batch (both operands and the
/// output), rows (A and the output), columns (B and the output) and contraction (A and B only).
struct EinsumGEMM: Kernel {
    let batch, m, n, k: Int
    /// How each operand is read: in place (`packed` nil) as [batch, M, K] / [batch, K, M]
    /// (A, `transA`) and [batch, K, N] / [batch, N, K] (B, `transB`), or packed into scratch
    /// from these strided views first.
    let packA: StridedView?, packB: StridedView?
    let transA, transB: Bool
    /// The output, when it is not in (batch, M, N) order: written to scratch, then permuted.
    let unpack: StridedView?
    /// Whether rows are samples (the output's first label is a row label): one SGEMM per row.
    let rowWise: Bool
    let scratchFloats: Int

    /// A strided read of a tensor into a contiguous buffer of `sizes`.
    struct StridedView {
        let sizes: [Int]
        let strides: [Int]
    }

    init?(_ e: EinsumEquation, shapes: [[Int]]) {
        guard shapes.count == 2 else { return nil }
        let a = e.terms[0], b = e.terms[1], out = e.output
        guard Set(a).count == a.count, Set(b).count == b.count else { return nil }  // diagonals
        // Every label is shared by two of (A, B, out); none summed from one operand alone.
        for l in a where !b.contains(l) && !out.contains(l) { return nil }
        for l in b where !a.contains(l) && !out.contains(l) { return nil }
        let bl = out.filter { a.contains($0) && b.contains($0) }
        let ml = out.filter { a.contains($0) && !b.contains($0) }
        let nl = out.filter { !a.contains($0) && b.contains($0) }
        let kl = a.filter { b.contains($0) && !out.contains($0) }
        let size = { (ls: [Int]) in ls.reduce(1) { $0 * e.sizes[$1] } }
        batch = size(bl); m = size(ml); n = size(nl); k = size(kl)
        guard batch > 0, m > 0, n > 0, k > 0 else { return nil }
        let sa = e.strides(0, shape: shapes[0]), sb = e.strides(1, shape: shapes[1])
        let full = { (labels: [Int], shape: [Int], term: [Int]) -> Bool in
            labels == term && zip(term, shape).allSatisfy { e.sizes[$0.0] == $0.1 }
        }
        var scratch = 0
        if full(bl + ml + kl, shapes[0], a) { packA = nil; transA = false }
        else if full(bl + kl + ml, shapes[0], a) { packA = nil; transA = true }
        else {
            let ls = bl + ml + kl
            packA = StridedView(sizes: ls.map { e.sizes[$0] }, strides: ls.map { sa[$0] })
            transA = false
            scratch += batch * m * k
        }
        if full(bl + kl + nl, shapes[1], b) { packB = nil; transB = false }
        else if full(bl + nl + kl, shapes[1], b) { packB = nil; transB = true }
        else {
            let ls = bl + kl + nl
            packB = StridedView(sizes: ls.map { e.sizes[$0] }, strides: ls.map { sb[$0] })
            transB = false
            scratch += batch * k * n
        }
        if out == bl + ml + nl { unpack = nil } else {
            // Read the (batch, M, N) buffer in the output's label order.
            let ls = bl + ml + nl
            let st = Shapes.strides(ls.map { e.sizes[$0] })
            unpack = StridedView(sizes: out.map { e.sizes[$0] }, strides: out.map { st[ls.firstIndex(of: $0) ?? 0] })
            scratch += batch * m * n
        }
        rowWise = !ml.isEmpty && out.first == ml.first && bl.isEmpty
        scratchFloats = scratch
    }

    static func copy(_ v: StridedView, from x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let r = v.sizes.count
        guard r > 0 else { y[0] = x[0]; return }
        let inner = v.sizes[r - 1], s = v.strides[r - 1]
        stridedRows(shape: v.sizes, strides: v.strides, pool: pool) { row, off in
            let dst = y + row * inner
            for i in 0..<inner { dst[i] = x[off + i * s] }
        }
    }

    func run(_ io: KernelIO) {
        // Scratch of worker 0 holds the packed operands (one buffer, filled on all workers).
        let base = io.scratch(0, Float.self)
        var next = base
        var a = io.input(0, Float.self), b = io.input(1, Float.self)
        if let p = packA { Self.copy(p, from: a, to: next, pool: io.pool); a = UnsafePointer(next); next += batch * m * k }
        if let p = packB { Self.copy(p, from: b, to: next, pool: io.pool); b = UnsafePointer(next); next += batch * k * n }
        let y = unpack == nil ? io.output(0, Float.self) : next
        let lda = transA ? m : k, ldb = transB ? k : n
        if rowWise {
            // Rows are samples: one SGEMM per row and column chunk (batch is 1 here).
            let colChunks = (n + gemmColumnChunk - 1) / gemmColumnChunk
            io.pool.parallelFor(m * colChunks) { ch, _ in
                let i = ch / colChunks, j0 = (ch % colChunks) * gemmColumnChunk, nn = min(gemmColumnChunk, n - j0)
                sgemm(transA: transA, transB: transB, m: 1, n: nn, k: k, alpha: 1, a: a + (transA ? i : i * k), lda: lda,
                      b: b + (transB ? j0 * k : j0), ldb: ldb, beta: 0, c: y + i * n + j0, ldc: n)
            }
        } else {
            let colChunks = (n + gemmColumnChunk - 1) / gemmColumnChunk
            io.pool.parallelFor(batch * colChunks) { ch, _ in
                let bi = ch / colChunks, j0 = (ch % colChunks) * gemmColumnChunk, nn = min(gemmColumnChunk, n - j0)
                sgemm(transA: transA, transB: transB, m: m, n: nn, k: k, alpha: 1, a: a + bi * m * k, lda: lda,
                      b: b + bi * k * n + (transB ? j0 * k : j0), ldb: ldb, beta: 0, c: y + bi * m * n + j0, ldc: n)
            }
        }
        if let u = unpack { Self.copy(u, from: UnsafePointer(y), to: io.output(0, Float.self), pool: io.pool) }
    }
}

// MARK: - Derivative rules

extension EinsumOp: ForwardDifferentiable {
    /// Multilinear: the sum over operands with a tangent of the same Einsum with that operand
    /// replaced by its tangent.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let terms: [String?] = r.node.inputs.indices.map { i in r.tangent(i).map { r.sameOp([i: $0])[0] } }
        return [r.sum(terms)]
    }
}

extension EinsumOp: ReverseDifferentiable {
    /// The cotangent of operand i is the Einsum of the other operands and G into operand i's
    /// labels (`others,out->term_i`). Needs each of operand i's labels once (no diagonal), in
    /// another operand or the output (not summed from it alone), and no broadcast size-1 dims.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        let shapes = r.inputs.map { $0?.shape ?? [] }
        var eq = ""
        if let a = r.node.attribute("equation"), let s = a.stringValue { eq = s }
        guard let e = try? EinsumEquation(eq, shapes: shapes), let explicit = e.explicit else {
            throw r.error("Einsum '\(eq)' has no reverse-mode (VJP) rule for this equation")
        }
        let sides = explicit.components(separatedBy: "->")
        let lhs = sides[0].components(separatedBy: ","), out = sides[1]
        var grads: [String?] = []
        for i in r.node.inputs.indices {
            guard r.needs(i) else { grads.append(nil); continue }
            let t = e.terms[i]
            let elsewhere = Set(e.output + e.terms.enumerated().filter { $0.offset != i }.flatMap(\.element))
            guard Set(t).count == t.count, t.allSatisfy({ elsewhere.contains($0) }),
                  zip(t, shapes[i]).allSatisfy({ e.sizes[$0.0] == $0.1 }) else {
                throw r.error("Einsum '\(eq)': operand \(i) has a diagonal, a label summed from it alone or a broadcast dim: no reverse-mode (VJP) rule")
            }
            let others = r.node.inputs.indices.filter { $0 != i }
            let equation = (others.map { lhs[$0] } + [out]).joined(separator: ",") + "->" + lhs[i]
            grads.append(r.emit("Einsum", others.map { r.input($0) } + [g], [Attribute("equation", .string(Array(equation.utf8)))]))
        }
        return grads
    }
}
