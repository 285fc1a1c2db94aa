import Foundation
import SCMTrigFlow

/// The 2-D toy distributions, each with an exact sampler.
///
/// Sample `index` at `step` takes the four words of one Philox block with counter
/// (0, index & 0xffffffff, step & 0xffffffff, step >> 32) under the stream's key (`DataStreams`:
/// "TRN " for training, "REF " for reference samples, where step is 0 and index the sample's
/// number); w0...w3 below are those words, u(w) = (w + 0.5) / 2^32, and (z1, z2) = Box-Muller of
/// two words as in `GaussianNoise`. Computed in double, rounded to float.
enum Toy: String, CaseIterable, Sendable {
    /// A 4x4 board on [-4, 4]^2 of cells of side 2; cell (i, j) (column i, row j, 0...3 from the
    /// lower left) covers [-4 + 2i, -2 + 2i] x [-4 + 2j, -2 + 2j] and is filled when i + j is even
    /// (8 cells, the lower-left one filled). Points are uniform on the filled cells: cell
    /// k = w0 >> 29 of the filled ones in row-major order from the lower left, then
    /// (x, y) = corner + 2 (u(w1), u(w2)). Data range (-4, 4).
    case checkerboard
    /// 8 Gaussians of standard deviation 0.5 centred on the circle of radius 4 at angles
    /// k pi / 4, k = 0...7 (the common toy from the flow-matching literature, scaled so the modes
    /// sit 8 standard deviations from the centre): k = w0 >> 29, (x, y) = 4 (cos, sin)(k pi / 4)
    /// + 0.5 (z1, z2) with (z1, z2) from (w1, w2). Data range (-6, 6): the circle plus 4 standard
    /// deviations (a point lands outside with probability about 1e-4).
    case gaussians8
    /// Two interleaving half circles in sklearn's `make_moons` convention: the upper moon
    /// (cos t, sin t) and the lower moon (1 - cos t, 0.5 - sin t), t = pi u(w1) in [0, pi], the
    /// moon chosen by w0 >> 31 (0: upper); then centred (minus (0.5, 0.25)), scaled by 2, and
    /// Gaussian noise of standard deviation 0.1 added in these final units, (z1, z2) from (w2, w3).
    /// Noiseless extent [-3, 3] x [-1.5, 1.5]; data range (-4, 4) (10 noise deviations of margin).
    case moons
    /// sklearn's 2-D swiss roll without noise, scaled by 1/3: t = 1.5 pi (1 + 2 u(w0)) in
    /// [1.5 pi, 4.5 pi], (x, y) = (t cos t, t sin t) / 3, a spiral of radius t / 3 in
    /// [pi / 2, 1.5 pi]. Data range (-5, 5) (extent: x in [-3.2, 4.2], y in [-3.7, 4.8]).
    case swissroll

    /// The bounding box used as data range (the same interval on both axes).
    var dataRange: (Float, Float) {
        switch self {
        case .checkerboard: (-4, 4)
        case .gaussians8: (-6, 6)
        case .moons: (-4, 4)
        case .swissroll: (-5, 5)
        }
    }

    func source() -> DataSource {
        DataSource(name: rawValue, sampleShape: [2], dataRange: dataRange, count: nil, labels: nil, classNames: nil,
                   content: .sampler(self), reference: .sampler)
    }

    /// The lower-left corners of the checkerboard's filled cells, row-major from the lower left.
    static let checkerboardCells: [(Double, Double)] = {
        var cells: [(Double, Double)] = []
        for j in 0..<4 {
            for i in 0..<4 where (i + j) % 2 == 0 { cells.append((Double(2 * i - 4), Double(2 * j - 4))) }
        }
        return cells
    }()

    /// Writes sample `index` of `step` in `streams` to out[0], out[1].
    @inline(__always)
    func sample(streams: DataStreams.Toys, step: UInt64, index: UInt64, into out: UnsafeMutablePointer<Float>) {
        let w = streams.generator.block((0, UInt32(truncatingIfNeeded: index),
                                         UInt32(truncatingIfNeeded: step), UInt32(truncatingIfNeeded: step >> 32)))
        let x: Double, y: Double
        switch self {
        case .checkerboard:
            let corner = Toy.checkerboardCells[Int(w.0 >> 29)]
            x = corner.0 + 2 * DataStreams.uniform(w.1)
            y = corner.1 + 2 * DataStreams.uniform(w.2)
        case .gaussians8:
            let angle = Double(w.0 >> 29) * Double.pi / 4
            let (z1, z2) = DataStreams.normals(w.1, w.2)
            x = 4 * cos(angle) + 0.5 * z1
            y = 4 * sin(angle) + 0.5 * z2
        case .moons:
            let t = Double.pi * DataStreams.uniform(w.1)
            let (px, py) = w.0 >> 31 == 0 ? (cos(t), sin(t)) : (1 - cos(t), 0.5 - sin(t))
            let (z1, z2) = DataStreams.normals(w.2, w.3)
            x = 2 * (px - 0.5) + 0.1 * z1
            y = 2 * (py - 0.25) + 0.1 * z2
        case .swissroll:
            let t = 1.5 * Double.pi * (1 + 2 * DataStreams.uniform(w.0))
            x = t * cos(t) / 3
            y = t * sin(t) / 3
        }
        out[0] = Float(x)
        out[1] = Float(y)
    }
}

extension DataSource {
    /// Whether (x, y) lies on the checkerboard's support: the closed filled cells (cell (i, j),
    /// column i and row j 0...3 from the lower left of [-4, 4]^2, filled when i + j is even). A
    /// point on an edge or corner of a filled cell is inside (float rounding can put a sample there).
    public static func checkerboardContains(_ x: Float, _ y: Float) -> Bool {
        guard x >= -4, x <= 4, y >= -4, y <= 4 else { return false }  // also false for NaN
        func cells(_ v: Float) -> [Int] {
            let f = (v + 4) / 2
            let lo = f.rounded(.down)
            var out: [Int] = []
            if lo <= 3 { out.append(Int(lo)) }
            if lo == f, lo >= 1 { out.append(Int(lo) - 1) }
            return out
        }
        for i in cells(x) { for j in cells(y) where (i + j) % 2 == 0 { return true } }
        return false
    }
}
