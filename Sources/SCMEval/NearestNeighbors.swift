import Foundation

/// Nearest-neighbour distances in pixel space (the memorization check).
public enum NearestNeighbors {
    /// For each of the `m` rows of `queries` ([m, d]) the Euclidean distance to its nearest row of
    /// `reference` ([n, d]). Candidates are ranked by |q|^2 + |r|^2 - 2 q.r with the dot products
    /// from SGEMM over fixed blocks; the winner's distance is then recomputed exactly in double.
    public static func distances(_ queries: UnsafeBufferPointer<Float>, count m: Int, reference: UnsafeBufferPointer<Float>, count n: Int,
                                 dimension d: Int, threads: Int = 1) -> [Double] {
        guard m > 0, n > 0 else { return [] }
        var refNorms = [Float](repeating: 0, count: n)
        for j in 0..<n {
            var s: Float = 0
            for k in 0..<d { s += reference[j * d + k] * reference[j * d + k] }
            refNorms[j] = s
        }
        let qBlock = 64, rBlock = 2048
        let blocks = (m + qBlock - 1) / qBlock
        var out = [Double](repeating: 0, count: m)
        out.withUnsafeMutableBufferPointer { result in
            let res = result.baseAddress!
            parallelChunks(blocks, threads: threads) { bi in
                let q0 = bi * qBlock, qm = min(qBlock, m - q0)
                var dots = [Float](repeating: 0, count: qm * rBlock)
                var best = [Float](repeating: .infinity, count: qm), bestIndex = [Int](repeating: 0, count: qm)
                var qNorms = [Float](repeating: 0, count: qm)
                for i in 0..<qm {
                    var s: Float = 0
                    for k in 0..<d { s += queries[(q0 + i) * d + k] * queries[(q0 + i) * d + k] }
                    qNorms[i] = s
                }
                var r0 = 0
                while r0 < n {
                    let rn = min(rBlock, n - r0)
                    dots.withUnsafeMutableBufferPointer { dp in
                        gemmABt(queries.baseAddress! + q0 * d, reference.baseAddress! + r0 * d, qm, rn, d, into: dp.baseAddress!)
                    }
                    for i in 0..<qm {
                        for j in 0..<rn {
                            let v = qNorms[i] + refNorms[r0 + j] - 2 * dots[i * rn + j]
                            if v < best[i] {
                                best[i] = v
                                bestIndex[i] = r0 + j
                            }
                        }
                    }
                    r0 += rn
                }
                for i in 0..<qm {
                    var s = 0.0
                    let r = bestIndex[i]
                    for k in 0..<d {
                        let diff = Double(queries[(q0 + i) * d + k]) - Double(reference[r * d + k])
                        s += diff * diff
                    }
                    res[q0 + i] = s.squareRoot()
                }
            }
        }
        return out
    }

    /// The `q` quantile of `values` (linear interpolation between order statistics, numpy's default).
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted()
        let pos = q * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (pos - Double(lo)) * (s[hi] - s[lo])
    }
}
