#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
/// counter-based generator. The same (key, counter) always gives the same four words, so noise
/// keyed by (seed, sample, step) needs no state and no order: sample i gets the same values alone
/// or in any batch, on any thread.
public struct Philox4x32: Sendable {
    /// The two key words (a seed's low and high halves for `GaussianNoise`).
    public var key: (UInt32, UInt32)

    /// A generator for `key`.
    public init(key: (UInt32, UInt32)) { self.key = key }

    /// The 10-round bijection of `counter` under `key`.
    @inline(__always)
    public func block(_ counter: (UInt32, UInt32, UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var c = counter
        var k = key
        for round in 0..<10 {
            if round > 0 {
                k.0 &+= 0x9E37_79B9
                k.1 &+= 0xBB67_AE85
            }
            let p0 = UInt64(0xD251_1F53) * UInt64(c.0)
            let p1 = UInt64(0xCD9E_8D57) * UInt64(c.2)
            c = (UInt32(truncatingIfNeeded: p1 >> 32) ^ c.1 ^ k.0, UInt32(truncatingIfNeeded: p1),
                 UInt32(truncatingIfNeeded: p0 >> 32) ^ c.3 ^ k.1, UInt32(truncatingIfNeeded: p0))
        }
        return c
    }
}

/// Standard normal noise keyed by (seed, sample, step), turned into normals by Box-Muller, so
/// other runtimes can reproduce it exactly (specified in schemas/README.md, "Noise").
public enum GaussianNoise {
    /// Fills `out[0..<count]` with the noise of `sample` at `step` for `seed`.
    ///
    /// Layout: key = (seed & 0xffffffff, seed >> 32); block b has counter (b & 0xffffffff, b >> 32,
    /// sample, step) and gives words w0...w3, read as uniforms u = (w + 0.5) / 2^32. Elements
    /// 4b and 4b+1 are r cos(2 pi u1) and r sin(2 pi u1) with r = sqrt(-2 ln u0); elements 4b+2
    /// and 4b+3 the same from w2, w3. Computed in double, rounded to float; the last block is cut
    /// at `count`.
    public static func fill(_ out: UnsafeMutablePointer<Float>, count: Int, seed: UInt64, sample: UInt32, step: UInt32) {
        fill(out, elements: 0..<count, seed: seed, sample: sample, step: step)
    }

    /// Fills `out[elements]` with those elements of the noise above (`out` is element 0), so a
    /// sample can be filled in parts, in any order, with the same values.
    public static func fill(_ out: UnsafeMutablePointer<Float>, elements: Range<Int>, seed: UInt64, sample: UInt32, step: UInt32) {
        let gen = Philox4x32(key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        var b = elements.lowerBound / 4
        while 4 * b < elements.upperBound {
            let w = gen.block((UInt32(truncatingIfNeeded: b), UInt32(truncatingIfNeeded: b >> 32), sample, step))
            let (z0, z1) = boxMuller(w.0, w.1), (z2, z3) = boxMuller(w.2, w.3)
            let base = 4 * b
            if elements.contains(base) { out[base] = z0 }
            if elements.contains(base + 1) { out[base + 1] = z1 }
            if elements.contains(base + 2) { out[base + 2] = z2 }
            if elements.contains(base + 3) { out[base + 3] = z3 }
            b += 1
        }
    }

    @inline(__always) static func uniform(_ w: UInt32) -> Double { (Double(w) + 0.5) / 4_294_967_296.0 }

    @inline(__always) static func boxMuller(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
        let r = (-2 * log(uniform(a))).squareRoot(), theta = 2 * Double.pi * uniform(b)
        return (Float(r * cos(theta)), Float(r * sin(theta)))
    }
}
