import CBLAS
import Foundation
import SCMTrigFlow

/// Mean and covariance of feature vectors, in double.
public struct Gaussian: Sendable, Equatable {
    /// The dimension d.
    public let dimension: Int
    /// The mean [d].
    public let mean: [Double]
    /// The covariance [d, d] (row-major, symmetric), normalized by n - 1.
    public let covariance: [Double]
    /// How many vectors it was estimated from.
    public let count: Int

    public init(mean: [Double], covariance: [Double], count: Int) {
        dimension = mean.count
        self.mean = mean
        self.covariance = covariance
        self.count = count
    }

    /// The sample mean and unbiased covariance of `count` vectors of `dimension` floats laid out
    /// row by row (needs count >= 2). Sums in double in a fixed order.
    public init(_ rows: UnsafeBufferPointer<Float>, count n: Int, dimension d: Int) throws {
        guard n >= 2, rows.count >= n * d else { throw EvalError(at: "statistics", "the covariance needs at least 2 vectors, got \(n)") }
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(rows[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        var centered = [Double](repeating: 0, count: d)
        cov.withUnsafeMutableBufferPointer { c in
            for i in 0..<n {
                for j in 0..<d { centered[j] = Double(rows[i * d + j]) - mean[j] }
                for a in 0..<d {
                    let xa = centered[a]
                    for b in a..<d { c[a * d + b] += xa * centered[b] }
                }
            }
            for a in 0..<d {
                for b in a..<d {
                    c[a * d + b] /= Double(n - 1)
                    c[b * d + a] = c[a * d + b]
                }
            }
        }
        self.init(mean: mean, covariance: cov, count: n)
    }
}

/// The Fréchet distance between two Gaussians (the FID formula in any feature space):
/// |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^(1/2) S2 S1^(1/2))^(1/2)). The matrix square roots
/// come from symmetric eigen-decompositions (cyclic Jacobi), negative eigenvalues of these PSD
/// matrices (rounding) taken as 0.
public func frechetDistance(_ a: Gaussian, _ b: Gaussian) throws -> Double {
    guard a.dimension == b.dimension else { throw EvalError(at: "statistics", "dimensions differ: \(a.dimension) and \(b.dimension)") }
    let d = a.dimension
    var meanTerm = 0.0
    for j in 0..<d { meanTerm += (a.mean[j] - b.mean[j]) * (a.mean[j] - b.mean[j]) }
    var trA = 0.0, trB = 0.0
    for j in 0..<d {
        trA += a.covariance[j * d + j]
        trB += b.covariance[j * d + j]
    }
    let rootA = SymmetricEigen(a.covariance, dimension: d).function { $0 > 0 ? $0.squareRoot() : 0 }
    let m = multiply(multiply(rootA, b.covariance, d), rootA, d)
    // Symmetrize against rounding before the eigen-decomposition.
    var sym = m
    for i in 0..<d { for j in 0..<d { sym[i * d + j] = 0.5 * (m[i * d + j] + m[j * d + i]) } }
    let cross = SymmetricEigen(sym, dimension: d).values.reduce(0.0) { $0 + ($1 > 0 ? $1.squareRoot() : 0) }
    return meanTerm + trA + trB - 2 * cross
}

/// C = A B for d x d row-major matrices.
func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
    var c = [Double](repeating: 0, count: d * d)
    for i in 0..<d {
        for k in 0..<d {
            let aik = a[i * d + k]
            if aik == 0 { continue }
            for j in 0..<d { c[i * d + j] += aik * b[k * d + j] }
        }
    }
    return c
}

/// The eigen-decomposition of a real symmetric matrix by the cyclic Jacobi method: A = V diag(values) V^T.
public struct SymmetricEigen: Sendable {
    public let dimension: Int
    public let values: [Double]
    /// Eigenvectors as columns of a row-major d x d matrix.
    public let vectors: [Double]

    public init(_ matrix: [Double], dimension d: Int, maxSweeps: Int = 100) {
        var a = matrix
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        var scale = 0.0
        for x in a { scale = max(scale, abs(x)) }
        for _ in 0..<maxSweeps {
            var off = 0.0
            for p in 0..<d { for q in (p + 1)..<max(d, p + 1) { off += a[p * d + q] * a[p * d + q] } }
            if off <= 1e-30 * max(scale * scale, 1e-300) || off == 0 { break }
            for p in 0..<d {
                for q in (p + 1)..<max(d, p + 1) {
                    let apq = a[p * d + q]
                    if apq == 0 { continue }
                    let app = a[p * d + p], aqq = a[q * d + q]
                    let theta = (aqq - app) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<d {
                        let akp = a[k * d + p], akq = a[k * d + q]
                        a[k * d + p] = c * akp - s * akq
                        a[k * d + q] = s * akp + c * akq
                    }
                    for k in 0..<d {
                        let apk = a[p * d + k], aqk = a[q * d + k]
                        a[p * d + k] = c * apk - s * aqk
                        a[q * d + k] = s * apk + c * aqk
                    }
                    for k in 0..<d {
                        let vkp = v[k * d + p], vkq = v[k * d + q]
                        v[k * d + p] = c * vkp - s * vkq
                        v[k * d + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        dimension = d
        values = (0..<d).map { a[$0 * d + $0] }
        vectors = v
    }

    /// V diag(f(values)) V^T.
    public func function(_ f: (Double) -> Double) -> [Double] {
        let d = dimension
        let fv = values.map(f)
        var out = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                var s = 0.0
                for k in 0..<d { s += vectors[i * d + k] * fv[k] * vectors[j * d + k] }
                out[i * d + j] = s
                out[j * d + i] = s
            }
        }
        return out
    }
}

/// Kernel Inception Distance (Bińkowski et al. 2018) in any feature space: the unbiased MMD^2
/// with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over `subsets` pairs of
/// random subsets of `subsetSize` vectors drawn without replacement from each set (the paper's
/// and torch-fidelity's protocol: 100 subsets of 1000). Subset draws are seeded (Philox keyed by
/// `seed`, counter by subset), so the result is deterministic.
public struct KID: Sendable {
    public var mean: Double
    public var std: Double
    public var subsets: Int
    public var subsetSize: Int

    public static func compute(_ x: UnsafeBufferPointer<Float>, count m: Int, _ y: UnsafeBufferPointer<Float>, count n: Int,
                               dimension d: Int, subsets: Int = 100, subsetSize: Int = 1000, seed: UInt64 = 0,
                               threads: Int = 1) throws -> KID {
        let s = min(subsetSize, m, n)
        guard s >= 2, subsets >= 1 else { throw EvalError(at: "KID", "needs at least 2 vectors in each set and one subset") }
        var values = [Double](repeating: 0, count: subsets)
        values.withUnsafeMutableBufferPointer { out in
            let outBase = out.baseAddress!
            parallelChunks(subsets, threads: threads) { k in
                let ix = sampleWithoutReplacement(count: s, from: m, seed: seed, stream: 0x4B49_4458, index: UInt32(k))
                let iy = sampleWithoutReplacement(count: s, from: n, seed: seed, stream: 0x4B49_4459, index: UInt32(k))
                var a = [Float](repeating: 0, count: s * d), b = [Float](repeating: 0, count: s * d)
                for (r, i) in ix.enumerated() { for j in 0..<d { a[r * d + j] = x[i * d + j] } }
                for (r, i) in iy.enumerated() { for j in 0..<d { b[r * d + j] = y[i * d + j] } }
                let kxx = kernelSum(a, a, s, s, d, skipDiagonal: true)
                let kyy = kernelSum(b, b, s, s, d, skipDiagonal: true)
                let kxy = kernelSum(a, b, s, s, d, skipDiagonal: false)
                let sd = Double(s)
                outBase[k] = (kxx + kyy) / (sd * (sd - 1)) - 2 * kxy / (sd * sd)
            }
        }
        let mean = values.reduce(0, +) / Double(subsets)
        let variance = subsets > 1 ? values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(subsets - 1) : 0
        return KID(mean: mean, std: variance.squareRoot(), subsets: subsets, subsetSize: s)
    }

    /// Sum over (i, j) of (a_i . b_j / d + 1)^3 (without i == j when `skipDiagonal`); the dot
    /// products by SGEMM, the kernel and the sum in double.
    static func kernelSum(_ a: [Float], _ b: [Float], _ m: Int, _ n: Int, _ d: Int, skipDiagonal: Bool) -> Double {
        var g = [Float](repeating: 0, count: m * n)
        gemmABt(a, b, m, n, d, into: &g)
        var total = 0.0
        for i in 0..<m {
            var row = 0.0
            for j in 0..<n where !(skipDiagonal && i == j) {
                let v = Double(g[i * n + j]) / Double(d) + 1
                row += v * v * v
            }
            total += row
        }
        return total
    }
}

/// C[m, n] = A[m, d] B[n, d]^T by one single-threaded SGEMM.
func gemmABt(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ m: Int, _ n: Int, _ d: Int, into c: UnsafeMutablePointer<Float>) {
    _ = blasConfigured
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(d), 1, a, Int32(d), b, Int32(d), 0, c, Int32(n))
}

func gemmABt(_ a: [Float], _ b: [Float], _ m: Int, _ n: Int, _ d: Int, into c: inout [Float]) {
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in gemmABt(pa.baseAddress!, pb.baseAddress!, m, n, d, into: pc.baseAddress!) }
        }
    }
}

/// OpenBLAS's own threads off: we split the work in fixed chunks above it (as the runtime does).
let blasConfigured: Void = { openblas_set_num_threads(1) }()

/// Runs body(0..<count) on `threads` workers, worker w taking chunks w, w + threads, ...; each
/// chunk's result depends only on its index, so the outcome does not depend on `threads`.
func parallelChunks(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    let t = max(1, min(threads, count))
    if t == 1 {
        for k in 0..<count { body(k) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The workers only read `body`'s captures or write disjoint elements through them.
        nonisolated(unsafe) let work = body
        DispatchQueue.concurrentPerform(iterations: t) { w in
            var k = w
            while k < count {
                work(k)
                k += t
            }
        }
    }
}

/// `count` distinct indices in 0..<n (a partial Fisher-Yates shuffle), drawn from Philox keyed by
/// (seed, stream) with counter (i, index): a pure function of its arguments.
func sampleWithoutReplacement(count: Int, from n: Int, seed: UInt64, stream: UInt32, index: UInt32) -> [Int] {
    let gen = Philox4x32(key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32) ^ stream))
    var pool = Array(0..<n)
    for i in 0..<min(count, n) {
        let w = gen.block((UInt32(truncatingIfNeeded: i), index, UInt32(truncatingIfNeeded: i >> 32), 0))
        let r = (UInt64(w.0) << 32 | UInt64(w.1)) % UInt64(n - i)
        pool.swapAt(i, i + Int(r))
    }
    return Array(pool.prefix(count))
}
