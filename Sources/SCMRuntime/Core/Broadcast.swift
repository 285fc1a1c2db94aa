/// Iteration over an output shape with numpy-broadcast inputs. Dims are collapsed where every
/// input is contiguous across them; the innermost dim is a tight loop (input stride 0 or 1) and
/// the rest are "rows". The thread pool gets chunks of about `chunkElements` outputs: several
/// short rows, or a piece of a long row (a same-shape operation collapses into one row of every
/// element). Each output element is computed alone, so the chunking changes no result.
struct BroadcastLoop: Sendable {
    let inner: Int
    let rows: Int
    let outer: [Int]
    /// strides[k][d]: element stride of input k along outer dim d.
    let strides: [[Int]]
    /// innerStrides[k]: 0 or 1.
    let innerStrides: [Int]
    static let chunkElements = 32768

    init(output: [Int], inputs: [[Int]]) {
        var dims: [Int] = []
        var st: [[Int]] = inputs.map { _ in [] }
        let all = inputs.map { Shapes.broadcastStrides(from: $0, to: output) }
        for d in 0..<output.count where output[d] != 1 {
            if let last = dims.last, (0..<inputs.count).allSatisfy({ st[$0].last! == all[$0][d] * output[d] }) {
                dims[dims.count - 1] = last * output[d]
                for k in 0..<inputs.count { st[k][st[k].count - 1] = all[k][d] }
            } else {
                dims.append(output[d])
                for k in 0..<inputs.count { st[k].append(all[k][d]) }
            }
        }
        if dims.isEmpty {
            dims = [1]
            st = inputs.map { _ in [0] }
        }
        // The innermost dim becomes the tight loop if each input's stride there is 0 or 1.
        if st.allSatisfy({ $0.last! <= 1 }) {
            inner = dims.removeLast()
            innerStrides = st.map { $0.last! }
            st = st.map { Array($0.dropLast()) }
        } else {
            inner = 1
            innerStrides = st.map { _ in 0 }
        }
        outer = dims
        strides = st
        rows = dims.reduce(1, *)
    }

    var rowsPerChunk: Int { max(1, Self.chunkElements / max(inner, 1)) }
    /// Pieces a row is cut into: 1 unless a row is longer than `chunkElements`.
    var piecesPerRow: Int { (inner + Self.chunkElements - 1) / Self.chunkElements }
    var chunks: Int { piecesPerRow > 1 ? rows * piecesPerRow : (rows + rowsPerChunk - 1) / rowsPerChunk }

    /// Calls `body(row, range)` for the rows of chunk `c` and the range of inner positions each
    /// covers (the whole row, or one piece of it).
    @inline(__always) func forEach(chunk c: Int, _ body: (_ row: Int, _ range: Range<Int>) -> Void) {
        let pieces = piecesPerRow
        if pieces > 1 {
            let lo = (c % pieces) * Self.chunkElements
            body(c / pieces, lo..<min(inner, lo + Self.chunkElements))
        } else {
            let rpc = rowsPerChunk
            for r in (c * rpc)..<min(rows, (c + 1) * rpc) { body(r, 0..<inner) }
        }
    }

    /// Input element offset of the start of `row` for input `k`.
    @inline(__always) func offset(_ row: Int, _ k: Int) -> Int {
        var rem = row, off = 0
        var d = outer.count - 1
        while d >= 0 {
            let n = outer[d]
            off += (rem % n) * strides[k][d]
            rem /= n
            d -= 1
        }
        return off
    }

    /// out[i] = F(a[i'], b[i']) over the broadcast.
    @inline(__always)
    func run2<F: BinaryFn>(_: F.Type, _ a: UnsafePointer<F.A>, _ b: UnsafePointer<F.B>,
                           _ o: UnsafeMutablePointer<F.O>, _ pool: ThreadPool) {
        let inner = inner, ia = innerStrides[0], ib = innerStrides[1]
        pool.parallelFor(chunks) { c, _ in
            forEach(chunk: c) { r, range in
                let lo = range.lowerBound, count = range.count
                let pa = a + offset(r, 0) + ia * lo, pb = b + offset(r, 1) + ib * lo, po = o + r * inner + lo
                switch (ia, ib) {
                case (1, 1): Self.pairs(F.self, pa, pb, po, count)
                case (1, 0):
                    let vb = pb[0]
                    for i in 0..<count { po[i] = F.f(pa[i], vb) }
                case (0, 1):
                    let va = pa[0]
                    for i in 0..<count { po[i] = F.f(va, pb[i]) }
                default:
                    let v = F.f(pa[0], pb[0])
                    for i in 0..<count { po[i] = v }
                }
            }
        }
    }
}

extension BroadcastLoop {
    /// o[i] = F(a[i], b[i]) for i < count. Eight loads of each input come before the eight
    /// stores, so the compiler vectorizes the block without proving that o does not overlap a or
    /// b (it left the plain loop scalar); o may be a or b itself (in place), as in the plain loop.
    @inline(__always)
    static func pairs<F: BinaryFn>(_: F.Type, _ a: UnsafePointer<F.A>, _ b: UnsafePointer<F.B>,
                                   _ o: UnsafeMutablePointer<F.O>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            let a0 = a[i], a1 = a[i + 1], a2 = a[i + 2], a3 = a[i + 3], a4 = a[i + 4], a5 = a[i + 5], a6 = a[i + 6], a7 = a[i + 7]
            let b0 = b[i], b1 = b[i + 1], b2 = b[i + 2], b3 = b[i + 3], b4 = b[i + 4], b5 = b[i + 5], b6 = b[i + 6], b7 = b[i + 7]
            o[i] = F.f(a0, b0); o[i + 1] = F.f(a1, b1); o[i + 2] = F.f(a2, b2); o[i + 3] = F.f(a3, b3)
            o[i + 4] = F.f(a4, b4); o[i + 5] = F.f(a5, b5); o[i + 6] = F.f(a6, b6); o[i + 7] = F.f(a7, b7)
            i += 8
        }
        while i < count {
            o[i] = F.f(a[i], b[i])
            i += 1
        }
    }
}

/// A binary elementwise function, specialized into the broadcast loop.
protocol BinaryFn {
    associatedtype A
    associatedtype B
    associatedtype O
    static func f(_ a: A, _ b: B) -> O
}

/// A unary elementwise function with one float parameter (alpha of LeakyRelu etc.).
protocol UnaryFn {
    static func f(_ x: Float, _ p: Float) -> Float
}

/// Splits `count` elements into chunks of a fixed size (independent of the thread count).
@inline(__always) func parallelElements(_ count: Int, _ pool: ThreadPool, chunk: Int = 32768,
                                        _ body: (Range<Int>) -> Void) {
    let n = (count + chunk - 1) / chunk
    pool.parallelFor(n) { c, _ in body((c * chunk)..<min(count, (c + 1) * chunk)) }
}
