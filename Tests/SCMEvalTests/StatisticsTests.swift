import Foundation
import SCMGraph
import SCMTrigFlow
import Testing
import TestSupport
@testable import SCMEval
@testable import SCMTrain

/// Rows of `n` vectors of `d` standard normals (Philox, seeded).
private func normals(_ n: Int, _ d: Int, seed: UInt64) -> [Float] {
    var out = [Float](repeating: 0, count: n * d)
    out.withUnsafeMutableBufferPointer { GaussianNoise.fill($0.baseAddress!, count: n * d, seed: seed, sample: 0, step: 0) }
    return out
}

@Suite("Evaluation statistics")
struct StatisticsTests {
    @Test("Jacobi: V diag(values) V^T rebuilds a symmetric matrix and V is orthogonal")
    func eigen() {
        let d = 24
        let r = randomFloats(d * d, seed: 3).map(Double.init)
        var a = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d { a[i * d + j] = r[i * d + j] + r[j * d + i] } }
        let e = SymmetricEigen(a, dimension: d)
        let rebuilt = e.function { $0 }
        var worst = 0.0, orth = 0.0
        for i in 0..<d {
            for j in 0..<d {
                worst = max(worst, abs(rebuilt[i * d + j] - a[i * d + j]))
                var dot = 0.0
                for k in 0..<d { dot += e.vectors[k * d + i] * e.vectors[k * d + j] }
                orth = max(orth, abs(dot - (i == j ? 1 : 0)))
            }
        }
        #expect(worst < 1e-10)
        #expect(orth < 1e-10)
    }

    @Test("Fréchet distance of Gaussians: 2-D closed form (non-commuting covariances) and diagonal ones")
    func frechetClosedForm() throws {
        // In 2-D, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for PSD M, and
        // tr(S1^(1/2) S2 S1^(1/2)) = tr(S1 S2), det = det S1 det S2.
        let s1 = [2.0, 0.7, 0.7, 1.0], s2 = [0.5, -0.3, -0.3, 1.5]
        let a = Gaussian(mean: [1, -2], covariance: s1, count: 100), b = Gaussian(mean: [0.5, 1], covariance: s2, count: 100)
        let trProduct = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3]
        let det = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2])
        let expected = 0.25 + 9 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2 * (trProduct + 2 * det.squareRoot()).squareRoot()
        #expect(abs(try frechetDistance(a, b) - expected) < 1e-12)
        #expect(abs(try frechetDistance(a, a)) < 1e-12)
        // Diagonal covariances in 64-D: |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2.
        let d = 64
        var c1 = [Double](repeating: 0, count: d * d), c2 = c1
        var sum = 0.0
        for i in 0..<d {
            let x = 0.5 + Double(i) / 10, y = 2.0 + sin(Double(i))
            c1[i * d + i] = x
            c2[i * d + i] = y
            sum += (x.squareRoot() - y.squareRoot()) * (x.squareRoot() - y.squareRoot())
        }
        let m1 = (0..<d).map { Double($0) / 64 }, m2 = [Double](repeating: 0, count: d)
        let meanTerm = m1.reduce(0) { $0 + $1 * $1 }
        let fd = try frechetDistance(Gaussian(mean: m1, covariance: c1, count: 10), Gaussian(mean: m2, covariance: c2, count: 10))
        #expect(abs(fd - (meanTerm + sum)) < 1e-9 * (meanTerm + sum))
    }

    @Test("Gaussian estimate: mean and unbiased covariance of given rows")
    func estimate() throws {
        let rows: [Float] = [1, 2, 3, 6, 5, 4]  // (1, 2), (3, 6), (5, 4)
        let g = try rows.withUnsafeBufferPointer { try Gaussian($0, count: 3, dimension: 2) }
        #expect(g.mean == [3, 4])
        // Deviations (-2, -2), (0, 2), (2, 0): sums 8, 4, 8 over n - 1 = 2.
        #expect(g.covariance == [4, 2, 2, 4])
        #expect(throws: EvalError.self) { try rows.withUnsafeBufferPointer { try Gaussian($0, count: 1, dimension: 2) } }
    }

    @Test("KID: one subset of whole sets equals the unbiased MMD^2 by brute force; same distribution about 0, shifted large")
    func kid() throws {
        let d = 8, n = 300
        let x = normals(n, d, seed: 1), y = normals(n, d, seed: 2).map { $0 + 0.5 }
        let k = try x.withUnsafeBufferPointer { px in
            try y.withUnsafeBufferPointer { try KID.compute(px, count: n, $0, count: n, dimension: d, subsets: 1, subsetSize: n) }
        }
        func kernel(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int) -> Double {
            var dot = 0.0
            for c in 0..<d { dot += Double(a[i * d + c]) * Double(b[j * d + c]) }
            return pow(dot / Double(d) + 1, 3)
        }
        var xx = 0.0, yy = 0.0, xy = 0.0
        for i in 0..<n {
            for j in 0..<n {
                if i != j { xx += kernel(x, i, x, j); yy += kernel(y, i, y, j) }
                xy += kernel(x, i, y, j)
            }
        }
        let nn = Double(n)
        let expected = (xx + yy) / (nn * (nn - 1)) - 2 * xy / (nn * nn)
        #expect(abs(k.mean - expected) < 1e-5 * abs(expected) + 1e-9)
        #expect(k.mean > 0.1)
        // Same distribution: about 0 (well inside the spread of the estimate).
        let big = normals(4000, d, seed: 5), other = normals(4000, d, seed: 6)
        let same = try big.withUnsafeBufferPointer { p in
            try other.withUnsafeBufferPointer { try KID.compute(p, count: 4000, $0, count: 4000, dimension: d, subsets: 20, subsetSize: 500, threads: 2) }
        }
        #expect(abs(same.mean) < 3 * same.std / 20.0.squareRoot() + 1e-6)
        #expect(same.std < 0.05)
        // Thread count does not change the result.
        let one = try big.withUnsafeBufferPointer { p in
            try other.withUnsafeBufferPointer { try KID.compute(p, count: 4000, $0, count: 4000, dimension: d, subsets: 20, subsetSize: 500, threads: 1) }
        }
        #expect(one.mean == same.mean && one.std == same.std)
    }

    @Test("Energy distance and sliced W1 of point masses and shifted sets: analytic values")
    func pointMetrics() {
        // X all at the origin, Y all at (3, 4): E = 2 |(3, 4)| = 10; SW1 = mean |v . theta| = 2 |v| / pi.
        let x = [Float](repeating: 0, count: 2 * 50), y = (0..<50).flatMap { _ in [Float(3), Float(4)] }
        #expect(abs(PointMetrics.energyDistance(x, y) - 10) < 1e-12)
        #expect(abs(PointMetrics.slicedWasserstein1(x, y) - 10 / Double.pi) < 1e-4)
        // Any set against itself shifted by v: SW1 = 2 |v| / pi exactly in the limit of directions.
        let p = normals(500, 2, seed: 9)
        var shifted = p
        for i in 0..<500 {
            shifted[2 * i] += 1
            shifted[2 * i + 1] -= 2
        }
        #expect(abs(PointMetrics.slicedWasserstein1(p, shifted) - 2 * 5.0.squareRoot() / Double.pi) < 1e-4)
        #expect(abs(PointMetrics.slicedWasserstein1(p, p)) == 0)
        #expect(PointMetrics.energyDistance(p, shifted) > 1)
        // Two samples of one distribution: small, and threads do not change it.
        let q = normals(500, 2, seed: 10)
        let e1 = PointMetrics.energyDistance(p, q, threads: 1), e2 = PointMetrics.energyDistance(p, q, threads: 2)
        #expect(e1 == e2)
        #expect(abs(e1) < 0.05)
    }

    @Test("Nearest neighbours: the brute-force distances, exact duplicates at 0, any thread count")
    func nearest() {
        let d = 50, n = 3000, m = 130
        let r = randomFloats(n * d, seed: 4)
        var q = randomFloats(m * d, seed: 5)
        for k in 0..<d { q[7 * d + k] = r[1234 * d + k] }  // query 7 is reference 1234
        let got = q.withUnsafeBufferPointer { pq in r.withUnsafeBufferPointer { NearestNeighbors.distances(pq, count: m, reference: $0, count: n, dimension: d, threads: 2) } }
        for i in 0..<m {
            var best = Double.infinity
            for j in 0..<n {
                var s = 0.0
                for k in 0..<d { s += (Double(q[i * d + k]) - Double(r[j * d + k])) * (Double(q[i * d + k]) - Double(r[j * d + k])) }
                best = min(best, s.squareRoot())
            }
            #expect(abs(got[i] - best) < 1e-9, "query \(i)")
        }
        #expect(got[7] == 0)
        #expect(NearestNeighbors.quantile([4, 1, 3, 2], 0.5) == 2.5)
    }

    @Test("Toy supports hold about all exact samples and far fewer uniform points")
    func supports() throws {
        for (name, exact, uniformAtMost) in [("checkerboard", 1.0, 0.55), ("gaussians8", 0.98, 0.45), ("moons", 0.98, 0.45), ("swissroll", 1.0, 0.2)] {
            let source = try DataSource.open(name)
            let s = try #require(source.supportDefinition)
            let points = try source.referenceSamples(count: 4000, seed: 3)
            let inside = (0..<4000).filter { s.contains(points[2 * $0], points[2 * $0 + 1]) }.count
            #expect(Double(inside) / 4000 >= exact, "\(name): \(inside) of 4000 exact samples in the support")
            let u = randomFloats(8000, seed: 11).map { $0 / 2 * source.dataRange.1 }  // uniform on the (symmetric) data range
            let uInside = (0..<4000).filter { s.contains(u[2 * $0], u[2 * $0 + 1]) }.count
            #expect(Double(uInside) / 4000 <= uniformAtMost, "\(name): \(uInside) of 4000 uniform points in the support")
        }
    }
}
