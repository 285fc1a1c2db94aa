import SCMGraph

/// `ai.scm:Dropout(X, key) -> Y`: training-time dropout whose mask is a function of the data, not
/// of a hidden generator state. X is [N, ...]; key is float [N], one value per sample (the
/// trainer passes the network's time input t, drawn afresh for every sample and step). Element e
/// of sample n is kept when hash(bits(key[n]), salt, e) >= ratio * 2^32 and then scaled by
/// 1 / (1 - ratio); otherwise it is 0. So the mask of a sample depends only on its own key, the
/// node's `salt` and the element's position in the sample: the same on any thread count and at
/// any position in the batch, the same in the forward pass, its JVP and its VJP (all run this
/// op), and different from node to node (`salt`) and step to step (the key).
///
/// Attributes: `ratio` (float in [0, 1), default 0.5), `salt` (int, default 0).
/// Derivatives: Y is linear in X for a given key: the tangent and the cotangent go through the
/// same mask; the key gets neither.
enum DropoutOp: Operator, ForwardDifferentiable, ReverseDifferentiable {
    static let opTypes = ["ai.scm:Dropout"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0), key = try ctx.input(1)
        try ctx.require(x, in: [.float], "X")
        try ctx.require(key, in: [.float], "key")
        guard x.rank >= 1, key.shape == [x.shape[0]] else {
            throw ctx.error("key \(key.shape) must be [N] for X \(x.shape) (one value per sample)")
        }
        let ratio = try ctx.float("ratio", 0.5)
        guard ratio >= 0, ratio < 1 else { throw ctx.error("ratio must be in [0, 1), is \(ratio)") }
        let salt = try ctx.optionalInt("salt") ?? 0
        let n = x.shape[0], per = n == 0 ? 0 : x.count / n
        // Kept when the 32-bit hash is >= threshold; ratio * 2^32 < 2^32 since ratio < 1.
        let threshold = UInt32(min(Double(UInt32.max), (Double(ratio) * 4294967296).rounded(.up)))
        return OpBuild(outputs: [x], kernel: DropoutKernel(samples: n, perSample: per, threshold: threshold,
                                                          scale: 1 / (1 - ratio), salt: UInt64(bitPattern: Int64(salt))),
                       inPlace: [0])
    }

    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        return r.sameOp([0: d]).map { Optional($0) }
    }

    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil, nil] }
        return [r.sameOp([0: g])[0], nil]
    }
}

struct DropoutKernel: Kernel {
    let samples, perSample: Int
    let threshold: UInt32
    let scale: Float
    let salt: UInt64

    /// SplitMix64's finalizer: a bijection of 64-bit words whose output bits each depend on every
    /// input bit.
    @inline(__always) static func mix(_ v: UInt64) -> UInt64 {
        var z = v
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The stream of the sample whose key has bits `key` at the node of `salt`.
    @inline(__always) static func stream(key: UInt32, salt: UInt64) -> UInt64 {
        mix(UInt64(key) &+ mix(salt &+ 0x9E37_79B9_7F4A_7C15))
    }

    /// The 32-bit draw of element `e` of a sample's stream.
    @inline(__always) static func draw(stream: UInt64, element e: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: mix(stream &+ UInt64(e) &* 0x9E37_79B9_7F4A_7C15) >> 32)
    }

    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), key = io.input(1, Float.self), y = io.output(0, Float.self)
        let chunk = 16384
        let perChunks = max(1, (perSample + chunk - 1) / chunk)
        io.pool.parallelFor(samples * perChunks, elements: samples * perSample) { c, _ in
            let n = c / perChunks, lo = (c % perChunks) * chunk, hi = min(perSample, lo + chunk)
            let stream = Self.stream(key: key[n].bitPattern, salt: salt), base = n * perSample
            for e in lo..<hi {
                y[base + e] = Self.draw(stream: stream, element: e) >= threshold ? x[base + e] * scale : 0
            }
        }
    }
}
