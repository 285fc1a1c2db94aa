import Foundation

/// Distances between sets of 2-D points (`x`, `y` laid out [n, 2]).
public enum PointMetrics {
    /// The energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Székely), the within-set means over
    /// pairs i != j (unbiased), sums in double in a fixed order (rows in fixed chunks).
    public static func energyDistance(_ x: [Float], _ y: [Float], threads: Int = 1) -> Double {
        2 * meanDistance(x, y, same: false, threads: threads) - meanDistance(x, x, same: true, threads: threads)
            - meanDistance(y, y, same: true, threads: threads)
    }

    static func meanDistance(_ a: [Float], _ b: [Float], same: Bool, threads: Int) -> Double {
        let m = a.count / 2, n = b.count / 2
        let chunk = 256, chunks = (m + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            parallelChunks(chunks, threads: threads) { c in
                var s = 0.0
                for i in c * chunk..<min(m, (c + 1) * chunk) {
                    let ax = Double(a[2 * i]), ay = Double(a[2 * i + 1])
                    var row = 0.0
                    for j in 0..<n where !(same && i == j) {
                        let dx = ax - Double(b[2 * j]), dy = ay - Double(b[2 * j + 1])
                        row += (dx * dx + dy * dy).squareRoot()
                    }
                    s += row
                }
                base[c] = s
            }
        }
        let pairs = same ? Double(m) * Double(m - 1) : Double(m) * Double(n)
        return partial.reduce(0, +) / max(pairs, 1)
    }

    /// The sliced Wasserstein-1 distance between two sets of equally many points: the mean over
    /// `directions` fixed directions at angles pi (l + 0.5) / L of the 1-D Wasserstein-1 distance
    /// of the projections (the mean absolute difference of the sorted projections).
    public static func slicedWasserstein1(_ x: [Float], _ y: [Float], directions: Int = 256) -> Double {
        let n = x.count / 2
        guard n > 0, y.count == x.count, directions > 0 else { return .nan }
        var total = 0.0
        var px = [Double](repeating: 0, count: n), py = [Double](repeating: 0, count: n)
        for l in 0..<directions {
            let angle = Double.pi * (Double(l) + 0.5) / Double(directions)
            let c = cos(angle), s = sin(angle)
            for i in 0..<n {
                px[i] = c * Double(x[2 * i]) + s * Double(x[2 * i + 1])
                py[i] = c * Double(y[2 * i]) + s * Double(y[2 * i + 1])
            }
            px.sort()
            py.sort()
            var w = 0.0
            for i in 0..<n { w += abs(px[i] - py[i]) }
            total += w / Double(n)
        }
        return total / Double(directions)
    }
}
