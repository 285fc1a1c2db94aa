import Foundation

/// A batch as a sampling rule sees it: the network's input `x` and output `y`, the samples `out`,
/// work buffers, and the hooks that run the network, draw noise and record ODE points. All
/// buffers hold `n` values (the batch's samples times their elements).
struct RuleBatch {
    let x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    let d1: UnsafeMutablePointer<Float>, d2: UnsafeMutablePointer<Float>, base: UnsafeMutablePointer<Float>
    let n: Int
    let sigma: Float
    /// Whether the network's output is the velocity F (else the consistency function f).
    let velocity: Bool
    /// Runs evaluation k (of the rule's `evaluationTimes`) on x into y.
    let evaluate: (Int) throws(SamplerError) -> Void
    /// x = c out + s z_step, drawing the noise z_step of every sample.
    let mixNoise: (_ step: Int, _ c: Float, _ s: Float) -> Void
    /// Sees each point of an ODE rule's grid: its index and x there.
    let record: ((Int, UnsafePointer<Float>) -> Void)?
}

/// How a batch goes from x = sigma_d z_0 at t_max to its samples (into `out`): which times the
/// network runs at, how many noise draws a sample takes, and the arithmetic between evaluations.
/// `Sampler` owns the plans, workspaces and noise; a rule owns only the sampling math.
protocol SamplingRule: Sendable {
    /// The times at which the network runs, in order, for each sample.
    var evaluationTimes: [Float] { get }
    /// Noise draws per sample.
    var noiseSteps: Int { get }
    func run(_ b: RuleBatch) throws(SamplerError)
}

/// cos(t) and sigma_d sin(t), computed in double and rounded to float (the contract).
func trigFlowCoefficients(_ t: Float, sigma: Float) -> (cos: Float, sigmaSin: Float) {
    (Float(cos(Double(t))), Float(Double(sigma) * sin(Double(t))))
}

/// Consistency sampling: x0 = f(x, t_0) at t_0 = t_max; for each next time s, x = cos(s) x0 +
/// sin(s) sigma_d z_k and x0 = f(x, s). A multistep model takes no fresh noise: x = the previous
/// f. With a velocity network, f = cos(t) x - sigma_d sin(t) F.
struct ConsistencyRule: SamplingRule {
    let times: [Float]
    /// A multistep consistency model (`scm.segments`).
    let multistep: Bool

    var evaluationTimes: [Float] { times }
    var noiseSteps: Int { times.count }

    func run(_ b: RuleBatch) throws(SamplerError) {
        let x = b.x, y = b.y, out = b.out, n = b.n
        for (k, t) in times.enumerated() {
            let (c, s) = trigFlowCoefficients(t, sigma: b.sigma)
            if k > 0 && multistep {
                x.update(from: out, count: n)
            } else if k > 0 {
                b.mixNoise(k, c, s)
            }
            try b.evaluate(k)
            if b.velocity {
                for i in 0..<n { out[i] = c * x[i] - s * y[i] }
            } else {
                out.update(from: y, count: n)
            }
        }
    }
}

/// The probability-flow ODE dx/dt = sigma_d F(x / sigma_d, t), integrated from t_max to 0 on a
/// uniform grid; a rule says how one grid interval is stepped.
protocol ODERule: SamplingRule {
    /// t_0 = t_max > ... > t_K = 0.
    var grid: [Float] { get }
    /// Advances x from `t` to `next`, running evaluations from `k` on (and counting them).
    func step(_ b: RuleBatch, from t: Float, to next: Float, evaluation k: inout Int) throws(SamplerError)
}

extension ODERule {
    var noiseSteps: Int { 1 }

    /// K uniform steps from `tMax` to 0.
    static func grid(steps k: Int, tMax: Float) -> [Float] {
        (0...k).map { Float(Double(tMax) * Double(k - $0) / Double(k)) }
    }

    func run(_ b: RuleBatch) throws(SamplerError) {
        var k = 0
        b.record?(0, b.x)
        for i in 0..<(grid.count - 1) {
            try step(b, from: grid[i], to: grid[i + 1], evaluation: &k)
            b.record?(i + 1, b.x)
        }
        b.out.update(from: b.x, count: b.n)
    }

    /// d = dx/dt at (xv, t) from y, the network's output there.
    func derivative(_ b: RuleBatch, _ xv: UnsafeMutablePointer<Float>, _ t: Float, into d: UnsafeMutablePointer<Float>) {
        let y = b.y, n = b.n, sigma = b.sigma
        if b.velocity {
            for i in 0..<n { d[i] = sigma * y[i] }
        } else {
            let c = Float(cos(Double(t))), s = Float(sin(Double(t)))
            for i in 0..<n { d[i] = (c * xv[i] - y[i]) / s }
        }
    }

    /// One Euler step: x += h D(x, t).
    func eulerStep(_ b: RuleBatch, from t: Float, to next: Float, evaluation k: inout Int) throws(SamplerError) {
        try b.evaluate(k)
        k += 1
        derivative(b, b.x, t, into: b.d1)
        let x = b.x, d1 = b.d1, h = next - t
        for i in 0..<b.n { x[i] = x[i] + h * d1[i] }
    }
}

/// Euler's rule: one evaluation per step.
struct EulerRule: ODERule {
    let grid: [Float]

    var evaluationTimes: [Float] { Array(grid.dropLast()) }

    func step(_ b: RuleBatch, from t: Float, to next: Float, evaluation k: inout Int) throws(SamplerError) {
        try eulerStep(b, from: t, to: next, evaluation: &k)
    }
}

/// Heun's second-order rule: two evaluations per step, Euler on a last step ending at 0 (where
/// the derivative of a consistency network is not defined).
struct HeunRule: ODERule {
    let grid: [Float]

    var evaluationTimes: [Float] {
        var times: [Float] = []
        for i in 0..<(grid.count - 1) {
            times.append(grid[i])
            if grid[i + 1] > 0 { times.append(grid[i + 1]) }
        }
        return times
    }

    func step(_ b: RuleBatch, from t: Float, to next: Float, evaluation k: inout Int) throws(SamplerError) {
        guard next > 0 else { return try eulerStep(b, from: t, to: next, evaluation: &k) }
        let x = b.x, d1 = b.d1, d2 = b.d2, base = b.base, n = b.n, h = next - t
        try b.evaluate(k)
        k += 1
        derivative(b, x, t, into: d1)
        base.update(from: x, count: n)
        for i in 0..<n { x[i] = base[i] + h * d1[i] }
        try b.evaluate(k)
        k += 1
        derivative(b, x, next, into: d2)
        let half = h * 0.5
        for i in 0..<n { x[i] = base[i] + half * (d1[i] + d2[i]) }
    }
}
