import Foundation
import SCMGraph
import SCMRuntime

/// `ai.scm:AdamUpdate(step, lr, P1..Pk, G1..Gk, M1..Mk, V1..Vk [, E1..Ek])`: one optimizer step
/// over k parameter tensors in one kernel, the training step's last node.
///
/// Attributes: `beta1` (0.9), `beta2` (0.999), `epsilon` (1e-8), `weight_decay` (0: Adam; > 0:
/// AdamW's decoupled decay), `max_grad_norm` (0: no clipping), `ema_decay` (0: no EMA inputs),
/// `ema_warmup` (1: the EMA's decay at step n is min(ema_decay, (1 + n) / (10 + n)), so that the
/// average forgets the initial weights early in a run), `ema_gamma` (> 0: EDM2's power-function
/// EMA instead, decay (1 - 1/n)^(ema_gamma + 1) at step n, an average over a fixed fraction of the
/// run so far; `ema_decay` > 0 then only says that the EMA inputs exist), `rectified` (1: RAdam, Liu et al. 2020: while the variance estimate is unreliable, rho_t <= 4,
/// the step is lr M'/(1 - b1^step), momentum without the adaptive denominator; afterwards the
/// adaptive step is scaled by the rectification r_t).
/// `step` is the 1-based step count and `lr` the learning rate, float scalars (rank 0 or [1]).
///
/// Outputs `P'1..k, M'1..k, V'1..k [, E'1..k], grad_norm`:
///   norm = sqrt(sum of every G^2) (summed in double in fixed chunks: the same for any thread
///   count), s = min(1, max_grad_norm / (norm + 1e-6)) when clipping, G' = s G,
///   M' = b1 M + (1 - b1) G', V' = b2 V + (1 - b2) G'^2,
///   P' = P - lr (M' / (1 - b1^step) / (sqrt(V' / (1 - b2^step)) + eps) + weight_decay P),
///   E' = d E + (1 - d) P'; grad_norm is the norm before clipping.
enum AdamUpdateOp: Operator {
    static let opTypes = ["ai.scm:AdamUpdate"]

    /// Elements per chunk of the norm's partial sums and of the update.
    static let chunk = 16384

    static func build(_ ctx: OpContext) throws -> OpBuild {
        let ema = try ctx.float("ema_decay", 0)
        let per = ema > 0 ? 5 : 4
        guard ctx.inputCount >= 2 + per, (ctx.inputCount - 2) % per == 0 else {
            throw ctx.error("takes step, lr and \(per) tensors per parameter (P, G, M, V\(ema > 0 ? ", E" : "")), has \(ctx.inputCount) inputs")
        }
        let k = (ctx.inputCount - 2) / per
        let outs = (per - 1) * k + 1
        guard ctx.node.outputs.count == outs else { throw ctx.error("has \(ctx.node.outputs.count) outputs, expected \(outs)") }
        for i in 0..<2 {
            let s = try ctx.input(i)
            guard s.dtype == .float, s.count == 1 else { throw ctx.error("\(i == 0 ? "step" : "lr") must be a float scalar, is \(s)") }
        }
        var sizes: [Int] = []
        var specs: [TensorSpec] = []
        for j in 0..<k {
            let p = try ctx.input(2 + j)
            guard p.dtype == .float else { throw ctx.error("parameter \(j) must be float, is \(p)") }
            for r in 1..<per {
                let t = try ctx.input(2 + r * k + j)
                guard t == p else { throw ctx.error("input \(2 + r * k + j) must be \(p) like parameter \(j), is \(t)") }
            }
            sizes.append(p.count)
            specs.append(p)
        }
        let b1 = try ctx.float("beta1", 0.9), b2 = try ctx.float("beta2", 0.999), eps = try ctx.float("epsilon", 1e-8)
        let wd = try ctx.float("weight_decay", 0), clip = try ctx.float("max_grad_norm", 0)
        let rectified = try ctx.int("rectified", 0) != 0
        let emaWarmup = try ctx.int("ema_warmup", 0) != 0
        let gamma = try ctx.float("ema_gamma", 0)
        guard (0..<1).contains(b1), (0..<1).contains(b2), eps > 0, wd >= 0, clip >= 0, (0..<1).contains(ema), gamma >= 0, gamma.isFinite else {
            throw ctx.error("needs 0 <= beta1, beta2, ema_decay < 1, epsilon > 0, weight_decay >= 0, max_grad_norm >= 0 and a finite ema_gamma >= 0")
        }
        var chunks: [(tensor: Int, range: Range<Int>)] = []
        for (j, n) in sizes.enumerated() {
            var s = 0
            while s < n {
                chunks.append((j, s..<min(n, s + chunk)))
                s += chunk
            }
        }
        let outSpecs = Array(repeating: specs, count: per - 1).flatMap { $0 } + [TensorSpec(.float, [])]
        let total = sizes.reduce(0, +)
        return OpBuild(outputs: outSpecs,
                       kernel: AdamUpdateKernel(k: k, ema: ema, chunks: chunks, b1: b1, b2: b2, eps: eps, wd: wd, clip: clip,
                                                rectified: rectified, emaWarmup: emaWarmup, emaGamma: gamma),
                       scratchBytes: max(8, chunks.count * 8), flops: 12 * total)
    }
}

struct AdamUpdateKernel: Kernel {
    let k: Int
    let ema: Float
    let chunks: [(tensor: Int, range: Range<Int>)]
    let b1, b2, eps, wd, clip: Float
    let rectified: Bool
    let emaWarmup: Bool
    let emaGamma: Float

    func run(_ io: KernelIO) {
        let step = Double(io.input(0, Float.self)[0]), lr = io.input(1, Float.self)[0]
        // Partial sums of squares, one slot per chunk, in worker 0's scratch.
        let partial = io.scratch(0, Double.self)
        let k = k, chunks = chunks
        io.pool.parallelFor(chunks.count) { c, _ in
            let (j, r) = chunks[c]
            let g = io.input(2 + k + j, Float.self)
            var s = 0.0
            for i in r { s += Double(g[i]) * Double(g[i]) }
            partial[c] = s
        }
        var sum = 0.0
        for c in 0..<chunks.count { sum += partial[c] }
        let norm = sum.squareRoot()
        let scale: Float = clip > 0 ? Float(min(1, Double(clip) / (norm + 1e-6))) : 1
        let c1 = Float(1 - pow(Double(b1), step)), c2 = Float(1 - pow(Double(b2), step))
        // RAdam: the length of the approximated SMA and the rectification term.
        var adaptive = true
        var rect: Float = 1
        if rectified {
            let b2d = Double(b2), rhoInf = 2 / (1 - b2d) - 1
            let rho = rhoInf - 2 * step * pow(b2d, step) / (1 - pow(b2d, step))
            if rho > 4 {
                rect = Float(((rho - 4) * (rho - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rho)).squareRoot())
            } else {
                adaptive = false
            }
        }
        let b1 = b1, b2 = b2, eps = eps, wd = wd
        let hasEMA = self.ema > 0
        let ema = emaGamma > 0 ? Float(pow(1 - 1 / max(step, 1), Double(emaGamma) + 1))
            : emaWarmup ? min(self.ema, Float((1 + step) / (10 + step))) : self.ema
        io.pool.parallelFor(chunks.count) { c, _ in
            let (j, r) = chunks[c]
            let p = io.input(2 + j, Float.self), g = io.input(2 + k + j, Float.self)
            let m = io.input(2 + 2 * k + j, Float.self), v = io.input(2 + 3 * k + j, Float.self)
            let po = io.output(j, Float.self), mo = io.output(k + j, Float.self), vo = io.output(2 * k + j, Float.self)
            let e: UnsafePointer<Float>? = hasEMA ? io.input(2 + 4 * k + j, Float.self) : nil
            let eo: UnsafeMutablePointer<Float>? = hasEMA ? io.output(3 * k + j, Float.self) : nil
            for i in r {
                let gi = g[i] * scale
                let mi = b1 * m[i] + (1 - b1) * gi
                let vi = b2 * v[i] + (1 - b2) * gi * gi
                let update = adaptive ? rect * (mi / c1) / ((vi / c2).squareRoot() + eps) : mi / c1
                let pi = p[i] - lr * (update + wd * p[i])
                mo[i] = mi
                vo[i] = vi
                po[i] = pi
                if let e, let eo { eo[i] = ema * e[i] + (1 - ema) * pi }
            }
        }
        io.output((hasEMA ? 4 : 3) * k, Float.self)[0] = Float(norm)
    }
}

/// The trainer's ops, registered with the runtime's op table by the trainer itself (the runtime
/// does not know them): `TrainingStep` and `TrainingSession` register them before they compile,
/// and a tool that runs arbitrary graphs (`scm-infer`) calls `register()` first.
public enum TrainingOps {
    /// Adds `ai.scm:AdamUpdate` to the runtime's ops; calling it again changes nothing.
    public static func register() { _ = registered }
    private static let registered: Void = { OpRegistry.register([AdamUpdateOp.self]) }()
}
