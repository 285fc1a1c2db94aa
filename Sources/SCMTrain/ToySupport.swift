import Foundation

extension DataSource {
    /// What "in the support" means for a 2-D toy (`scm-eval`), and whether a point is in it:
    /// - checkerboard: the closed filled cells (exact samples: 100%);
    /// - gaussians8: within 1.5 (3 standard deviations) of one of the 8 centres (exact: 98.9%);
    /// - moons: within 0.3 (3 noise deviations) of the noiseless moons (exact: about 99%);
    /// - swissroll: within 0.1 of the noiseless spiral (exact: 100%).
    /// The curves are taken as 4000 points each (gaps below 0.01). Nil for other data.
    public var supportDefinition: (description: String, contains: @Sendable (Float, Float) -> Bool)? {
        guard case .sampler(let toy) = content else { return nil }
        func near(_ curve: [(Double, Double)], _ radius: Double) -> @Sendable (Float, Float) -> Bool {
            let r2 = radius * radius
            return { x, y in
                let px = Double(x), py = Double(y)
                return curve.contains { (px - $0.0) * (px - $0.0) + (py - $0.1) * (py - $0.1) <= r2 }
            }
        }
        let k = 4000
        switch toy {
        case .checkerboard:
            return ("in a filled cell", { DataSource.checkerboardContains($0, $1) })
        case .gaussians8:
            let centres = (0..<8).map { (4 * cos(Double($0) * Double.pi / 4), 4 * sin(Double($0) * Double.pi / 4)) }
            return ("within 1.5 (3 sd) of a centre", near(centres, 1.5))
        case .moons:
            var curve: [(Double, Double)] = []
            for i in 0..<k {
                let t = Double.pi * Double(i) / Double(k - 1)
                curve.append((2 * (cos(t) - 0.5), 2 * (sin(t) - 0.25)))
                curve.append((2 * (1 - cos(t) - 0.5), 2 * (0.5 - sin(t) - 0.25)))
            }
            return ("within 0.3 (3 noise sd) of the moons", near(curve, 0.3))
        case .swissroll:
            let curve = (0..<k).map { i -> (Double, Double) in
                let t = 1.5 * Double.pi * (1 + 2 * Double(i) / Double(k - 1))
                return (t * cos(t) / 3, t * sin(t) / 3)
            }
            return ("within 0.1 of the spiral", near(curve, 0.1))
        }
    }
}
