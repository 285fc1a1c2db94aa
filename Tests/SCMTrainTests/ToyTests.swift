import Foundation
import SCMTrigFlow
import Testing
@testable import SCMTrain

/// 8000 training samples of `name`: 8 steps of 1000.
private func samples(_ name: String, seed: UInt64 = 1) throws -> [(Float, Float)] {
    let source = try DataSource.open(name)
    var points: [(Float, Float)] = []
    for step in 0..<8 {
        let values = batch(source, step: step, size: 1000, seed: seed)
        for i in 0..<1000 { points.append((values[2 * i], values[2 * i + 1])) }
    }
    return points
}

private func inside(_ p: (Float, Float), _ range: (Float, Float)) -> Bool {
    p.0 >= range.0 && p.0 <= range.1 && p.1 >= range.0 && p.1 <= range.1
}

@Suite("2-D toy distributions")
struct ToyTests {
    @Test("checkerboardContains: the closed filled cells of the 4x4 board on [-4, 4]^2")
    func checkerboardSupport() {
        // Cell centres: (i, j) filled when i + j is even.
        for j in 0..<4 {
            for i in 0..<4 {
                let x = Float(-3 + 2 * i), y = Float(-3 + 2 * j)
                #expect(DataSource.checkerboardContains(x, y) == ((i + j) % 2 == 0), "cell (\(i), \(j))")
            }
        }
        #expect(DataSource.checkerboardContains(-4, -4))  // the board's lower-left corner
        #expect(!DataSource.checkerboardContains(4, -4))  // lower-right corner: cell (3, 0) is empty
        #expect(DataSource.checkerboardContains(4, 4))
        #expect(DataSource.checkerboardContains(-2, -3))  // the edge between filled (0, 0) and empty (1, 0)
        #expect(!DataSource.checkerboardContains(-1.999, -3))
        #expect(!DataSource.checkerboardContains(-4.001, -3))
        #expect(!DataSource.checkerboardContains(.nan, 0))
    }

    @Test("checkerboard: 8000 samples all on the support, about 1000 in each of the 8 filled cells")
    func checkerboard() throws {
        let points = try samples("checkerboard")
        let outside = points.filter { !DataSource.checkerboardContains($0.0, $0.1) }
        #expect(outside.isEmpty, "\(outside.count) samples off the support, e.g. \(outside.prefix(3))")
        var cells = [Int](repeating: 0, count: 16)
        for p in points {
            let i = min(3, max(0, Int(((p.0 + 4) / 2).rounded(.down))))
            let j = min(3, max(0, Int(((p.1 + 4) / 2).rounded(.down))))
            cells[4 * j + i] += 1
        }
        // Binomial(8000, 1/8): standard deviation 30.
        for j in 0..<4 {
            for i in 0..<4 {
                let n = cells[4 * j + i]
                if (i + j) % 2 == 0 { #expect(abs(n - 1000) < 150, "cell (\(i), \(j)): \(n)") } else { #expect(n == 0) }
            }
        }
        // Uniform within cells: the mean offset from the cell's lower-left corner is about (1, 1).
        let offsets = points.map { (($0.0 + 4).truncatingRemainder(dividingBy: 2), ($0.1 + 4).truncatingRemainder(dividingBy: 2)) }
        #expect(abs(offsets.map(\.0).reduce(0, +) / 8000 - 1) < 0.04)  // sd of the mean 0.0065
        #expect(abs(offsets.map(\.1).reduce(0, +) / 8000 - 1) < 0.04)
    }

    @Test("gaussians8: about 1000 samples near each of the 8 centres at radius 4, means within 0.08, deviations 0.5")
    func gaussians8() throws {
        let points = try samples("gaussians8")
        let centres = (0..<8).map { k in (4 * cos(Double(k) * Double.pi / 4), 4 * sin(Double(k) * Double.pi / 4)) }
        var groups = [[(Double, Double)]](repeating: [], count: 8)
        for p in points {
            let x = Double(p.0), y = Double(p.1)
            let k = (0..<8).min { (x - centres[$0].0) * (x - centres[$0].0) + (y - centres[$0].1) * (y - centres[$0].1)
                < (x - centres[$1].0) * (x - centres[$1].0) + (y - centres[$1].1) * (y - centres[$1].1) }!
            groups[k].append((x, y))
        }
        for k in 0..<8 {
            let g = groups[k], n = Double(g.count)
            #expect(abs(g.count - 1000) < 150, "centre \(k): \(g.count)")
            let mx = g.map(\.0).reduce(0, +) / n, my = g.map(\.1).reduce(0, +) / n
            // Standard deviation of a mean: 0.5 / sqrt(1000) = 0.016.
            #expect(abs(mx - centres[k].0) < 0.08 && abs(my - centres[k].1) < 0.08, "centre \(k): mean (\(mx), \(my))")
            let sx = (g.map { ($0.0 - mx) * ($0.0 - mx) }.reduce(0, +) / n).squareRoot()
            let sy = (g.map { ($0.1 - my) * ($0.1 - my) }.reduce(0, +) / n).squareRoot()
            #expect(abs(sx - 0.5) < 0.05 && abs(sy - 0.5) < 0.05, "centre \(k): deviations (\(sx), \(sy))")
        }
        let range = try DataSource.open("gaussians8").dataRange
        #expect(range == (-6, 6))
        #expect(points.filter { !inside($0, range) }.count <= 3)
    }

    @Test("moons: inside (-4, 4)^2, within 6 noise deviations of one of the two half circles, half on each, residual deviation 0.1")
    func moons() throws {
        let points = try samples("moons")
        let range = try DataSource.open("moons").dataRange
        #expect(range == (-4, 4))
        let outside = points.filter { !inside($0, range) }
        #expect(outside.isEmpty, "\(outside.count) samples outside, e.g. \(outside.prefix(3))")
        var upper = 0
        var squares = 0.0
        var far: [(Float, Float)] = []
        for p in points {
            // Undo the centring and scaling; the distance to each unit half circle, in final units.
            let x = Double(p.0) / 2 + 0.5, y = Double(p.1) / 2 + 0.25
            func arc(_ cx: Double, _ cy: Double, up: Bool) -> Double {
                let dx = x - cx, dy = y - cy
                if (dy >= 0) == up { return 2 * abs((dx * dx + dy * dy).squareRoot() - 1) }
                // Beyond the half circle's ends: the nearer end.
                return 2 * min(((dx - 1) * (dx - 1) + dy * dy).squareRoot(), ((dx + 1) * (dx + 1) + dy * dy).squareRoot())
            }
            let dUpper = arc(0, 0, up: true), dLower = arc(1, 0.5, up: false)
            if min(dUpper, dLower) >= 0.6 { far.append(p) }
            if dUpper < dLower { upper += 1 }
            squares += min(dUpper, dLower) * min(dUpper, dLower)
        }
        #expect(far.isEmpty, "\(far.count) samples farther than 0.6 from both moons, e.g. \(far.prefix(3))")
        // Binomial(8000, 1/2): standard deviation 45 (a few points sit nearer the other moon).
        #expect(abs(upper - 4000) < 250)
        // The distance to the curve is about |normal component of the noise|: rms about 0.1.
        let rms = (squares / 8000).squareRoot()
        #expect(rms > 0.08 && rms < 0.11, "rms distance \(rms)")
    }

    @Test("swissroll: inside (-5, 5)^2, on the spiral (t cos t, t sin t) / 3 with t = 3 |p| in [1.5 pi, 4.5 pi], t uniform")
    func swissroll() throws {
        let points = try samples("swissroll")
        let range = try DataSource.open("swissroll").dataRange
        #expect(range == (-5, 5))
        let outside = points.filter { !inside($0, range) }
        #expect(outside.isEmpty, "\(outside.count) samples outside, e.g. \(outside.prefix(3))")
        var tSum = 0.0
        var off: [(Float, Float)] = []
        for p in points {
            let t = 3 * (Double(p.0) * Double(p.0) + Double(p.1) * Double(p.1)).squareRoot()
            let onSpiral = abs(t * cos(t) / 3 - Double(p.0)) < 1e-4 && abs(t * sin(t) / 3 - Double(p.1)) < 1e-4
            if !onSpiral || t < 1.5 * Double.pi - 1e-4 || t > 4.5 * Double.pi + 1e-4 { off.append(p) }
            tSum += t
        }
        #expect(off.isEmpty, "\(off.count) samples off the spiral, e.g. \(off.prefix(3))")
        // Mean of t: 3 pi; its standard deviation over 8000: (3 pi / sqrt(3)) / sqrt(8000) = 0.06.
        #expect(abs(tSum / 8000 - 3 * Double.pi) < 0.3)
    }

    @Test("Toy batches: sample i of a step is the same in any batch size, steps and seeds differ, reference samples are their own stream")
    func toyStreams() throws {
        for name in ["checkerboard", "gaussians8", "moons", "swissroll"] {
            let source = try DataSource.open(name)
            let big = batch(source, step: 5, size: 64, seed: 3)
            #expect(Array(big[0..<20]) == batch(source, step: 5, size: 10, seed: 3))
            #expect(big == batch(source, step: 5, size: 64, seed: 3))
            #expect(big != batch(source, step: 6, size: 64, seed: 3))
            #expect(big != batch(source, step: 5, size: 64, seed: 4))
            let reference = try source.referenceSamples(count: 64, seed: 3)
            #expect(reference == (try source.referenceSamples(count: 64, seed: 3)))
            #expect(Array(reference[0..<20]) == (try source.referenceSamples(count: 10, seed: 3)))
            for step in 0..<4 { #expect(reference != batch(source, step: step, size: 64, seed: 3)) }
            #expect(reference != (try source.referenceSamples(count: 64, seed: 4)))
            #expect(dataError { try source.referenceSamples(count: -1, seed: 0) } != nil)
        }
    }

    @Test("The documented stream: checkerboard sample i of step s from Philox4x32 keyed (seed lo, seed hi ^ \"TRN \"), counter (0, i, s lo, s hi)")
    func documentedStream() throws {
        let source = try DataSource.open("checkerboard")
        let seed: UInt64 = 0x1234_5678_9ABC_DEF0, step = (1 << 33) + 17
        let values = batch(source, step: step, size: 5, seed: seed)
        let gen = Philox4x32(key: (0x9ABC_DEF0, 0x1234_5678 ^ 0x5452_4E20))
        let cells = [(0, 0), (2, 0), (1, 1), (3, 1), (0, 2), (2, 2), (1, 3), (3, 3)]
        for i in 0..<5 {
            let w = gen.block((0, UInt32(i), 17, 2))
            let (ci, cj) = cells[Int(w.0 >> 29)]
            let x = Double(-4 + 2 * ci) + 2 * (Double(w.1) + 0.5) / 4_294_967_296
            let y = Double(-4 + 2 * cj) + 2 * (Double(w.2) + 0.5) / 4_294_967_296
            #expect(values[2 * i] == Float(x) && values[2 * i + 1] == Float(y))
        }
    }
}
