import Foundation
import SCMGraph

/// A TrigFlow UNet for images: conv in; per level `resBlocks` ResBlocks with adaptive double
/// normalization (ADN: `GroupNorm(h) * pnorm(s(t)) + pnorm(b(t))`, then SiLU), attention after
/// each ResBlock at the listed resolutions; a stride-2 conv between levels; on the way up nearest
/// upsampling and a conv, with the skips concatenated; GroupNorm, SiLU and a zero-initialized conv
/// out. Time: `c_noise(t) = t` through sinusoidal features of `embedding` channels and a two-layer
/// MLP; a log-variance head (a linear map of the time features) for adaptive weighting, built only
/// for training.
public struct UNetConfig: Codable, Sendable, Equatable {
    /// Channels of a sample (1 gray, 3 RGB).
    public var inChannels = 1
    /// Height and width of a sample.
    public var size = 28
    /// Channels per level (each level after the first halves the resolution).
    public var widths = [32, 64, 64]
    /// ResBlocks per level on the way down (one more on the way up, for the skip).
    public var resBlocks = 1
    /// Resolutions (height) at which attention follows each ResBlock.
    public var attentionResolutions = [7]
    /// Dropout in the ResBlocks, before their second conv (ADM/EDM's place), in training graphs
    /// only (`ai.scm:Dropout`, its mask keyed by each sample's t); 0: none (the presets: sCM's
    /// small models train without it, and our short CPU runs underfit rather than overfit).
    public var dropout: Float = 0
    /// Sinusoidal time-feature channels.
    public var embedding = 64
    /// GroupNorm groups (each width must be a multiple).
    public var groups = 8

    public init() {}
}

/// A TrigFlow MLP for vector data [N, dim]: [x, sin/cos time features] -> `layers` SiLU layers
/// of `hidden` units -> a zero-initialized linear output; a log-variance head for training.
public struct MLPConfig: Codable, Sendable, Equatable {
    public var dim = 2
    public var hidden = 128
    public var layers = 3
    public var embedding = 32
    public init() {}
}

/// The network of a training run.
public enum NetworkConfig: Codable, Sendable, Equatable {
    case unet(UNetConfig)
    case mlp(MLPConfig)

    /// One sample's shape.
    public var sampleShape: [Int] {
        switch self {
        case .unet(let c): [c.inChannels, c.size, c.size]
        case .mlp(let c): [c.dim]
        }
    }

    /// Whether the two build the same parameters (they differ at most in training-only settings:
    /// dropout), so that one's weights can start the other.
    public func hasParameters(of other: NetworkConfig) -> Bool {
        func base(_ c: NetworkConfig) -> NetworkConfig {
            guard case .unet(var u) = c else { return c }
            u.dropout = 0
            return .unet(u)
        }
        return base(self) == base(other)
    }

    /// Named presets: images (`small`, `default`) and vectors (`mlp`).
    public static func preset(_ name: String, sampleShape: [Int]) throws -> NetworkConfig {
        if sampleShape.count == 1 {
            guard name == "default" || name == "mlp" || name == "small" else {
                throw SCMError(at: "model", "'\(name)' is not a network for vector data (default, small, mlp)")
            }
            var c = MLPConfig()
            c.dim = sampleShape[0]
            if name == "small" { c.hidden = 64 }
            return .mlp(c)
        }
        guard sampleShape.count == 3, sampleShape[1] == sampleShape[2] else {
            throw TrainError(at: "data", "samples of shape \(sampleShape) are neither vectors nor square images")
        }
        var c = UNetConfig()
        c.inChannels = sampleShape[0]
        c.size = sampleShape[1]
        switch name {
        case "default": break
        case "small":
            c.widths = [16, 32, 32]
            c.embedding = 32
        default:
            throw SCMError(at: "model", "'\(name)' is not a network preset (small, default)")
        }
        // Attention at the lowest resolution the widths reach.
        var r = c.size
        for _ in 1..<c.widths.count { r = (r + 1) / 2 }
        c.attentionResolutions = [r]
        return .unet(c)
    }
}

/// Builds networks from their configuration. The trained graph and the exported graph come from
/// this one definition: training adds the log-variance output, export leaves it out.
public enum Networks {
    /// The network: inputs `x` [N, sample shape] (the noisy sample divided by sigma_d) and `t` [N];
    /// output `F` [N, sample shape] (TrigFlow's velocity network); with `logvar`, a second output
    /// `logvar` [N, 1]. Parameters take the values in `parameters` (by name) or a seeded initialization.
    /// `dropout`: the training step's graph, with the configuration's dropout (checkpoints and
    /// exported models leave it out: they are the network at inference).
    public static func build(_ config: NetworkConfig, seed: UInt64, parameters: [String: Tensor] = [:], logvar: Bool,
                             dropout: Bool = false) throws -> Model {
        let b = NetworkBuilder(seed: seed, given: parameters)
        let sample = config.sampleShape
        let x = "x", t = "t"
        var outputs: [ValueInfo] = []
        let F: String
        var lv: String? = nil
        switch config {
        case .unet(let c):
            try check(c)
            (F, lv) = try unet(b, c, x: x, t: t, logvar: logvar, dropout: dropout ? c.dropout : 0)
        case .mlp(let c):
            (F, lv) = try mlp(b, c, x: x, t: t, logvar: logvar)
        }
        outputs.append(ValueInfo(F, .float, [.param("N")] + sample.map { .value($0) }))
        if logvar, let lv { outputs.append(ValueInfo(lv, .float, [.param("N"), .value(1)])) }
        let inputs = [ValueInfo(x, .float, [.param("N")] + sample.map { .value($0) }), ValueInfo(t, .float, [.param("N")])]
        return b.model(name: "trigflow_network", inputs: inputs, outputs: outputs)
    }

    static func check(_ c: UNetConfig) throws {
        guard !c.widths.isEmpty, c.widths.allSatisfy({ $0 >= 1 && $0 % c.groups == 0 }), c.groups >= 1 else {
            throw TrainError(at: "network", "widths \(c.widths) must be positive multiples of groups \(c.groups)")
        }
        guard c.dropout >= 0, c.dropout < 1 else { throw TrainError(at: "network", "dropout must be in [0, 1), is \(c.dropout)") }
        guard c.resBlocks >= 1, c.embedding >= 2, c.embedding % 2 == 0, c.inChannels >= 1, c.size >= 1 else {
            throw TrainError(at: "network", "needs resBlocks >= 1, an even embedding >= 2, inChannels >= 1 and size >= 1")
        }
    }

    // MARK: Layers

    /// Sinusoidal (positional) features of c_noise(t) = t: [sin(t f_k), cos(t f_k)] with f_k from
    /// `maxFrequency` down geometrically to 1e-4 of it. sCM's point: with c_noise = t and no
    /// large scale, dF/dt (the JVP along t) stays moderate; features of 1000 t make the tangent
    /// of sCT three orders larger and training collapses (measured: samples at one point).
    static func timeFeatures(_ b: NetworkBuilder, _ t: String, channels: Int, maxFrequency: Double = 1) throws -> String {
        let half = channels / 2
        let freqs = (0..<half).map { Float(maxFrequency * pow(1e-4, Double($0) / Double(max(half - 1, 1)))) }
        let arg = b.op("Mul", [b.op("Unsqueeze", [t, try b.ints([1])]), try b.constant(freqs, [1, half])])
        return b.op("Concat", [b.op("Sin", [arg]), b.op("Cos", [arg])], [Attribute("axis", .int(1))])
    }

    /// y = x W + b (x [N, cin]); W ~ N(0, gain^2 / cin).
    static func linear(_ b: NetworkBuilder, _ x: String, _ cin: Int, _ cout: Int, _ name: String, gain: Float = 1, zero: Bool = false) throws -> String {
        try b.scoped(name) {
            let w = try b.parameter("w", [cin, cout]) { zero ? [Float](repeating: 0, count: $0) : b.normal($0, std: gain / Float(cin).squareRoot()) }
            let bias = try b.parameter("b", [cout]) { [Float](repeating: 0, count: $0) }
            return b.op("Gemm", [x, w, bias])
        }
    }

    static func conv(_ b: NetworkBuilder, _ x: String, _ cin: Int, _ cout: Int, _ name: String, k: Int = 3, stride: Int = 1,
                     zero: Bool = false) throws -> String {
        try b.scoped(name) {
            let fan = cin * k * k
            let w = try b.parameter("w", [cout, cin, k, k]) { zero ? [Float](repeating: 0, count: $0) : b.normal($0, std: 1 / Float(fan).squareRoot()) }
            let bias = try b.parameter("b", [cout]) { [Float](repeating: 0, count: $0) }
            return b.op("Conv", [x, w, bias], [Attribute("kernel_shape", .ints([k, k])), Attribute("pads", .ints(Array(repeating: k / 2, count: 4))),
                                               Attribute("strides", .ints([stride, stride]))])
        }
    }

    static func silu(_ b: NetworkBuilder, _ x: String) -> String { b.op("Mul", [x, b.op("Sigmoid", [x])]) }

    static func groupNorm(_ b: NetworkBuilder, _ x: String, _ c: Int, groups: Int, _ name: String) throws -> String {
        try b.scoped(name) {
            let s = try b.parameter("scale", [c]) { [Float](repeating: 1, count: $0) }
            let sh = try b.parameter("bias", [c]) { [Float](repeating: 0, count: $0) }
            return b.op("GroupNormalization", [x, s, sh], [Attribute("num_groups", .int(groups)), Attribute("epsilon", .float(1e-5))])
        }
    }

    /// v / sqrt(mean(v^2 over the channels) + 1e-8), then [N, C, 1, 1] (pixel normalization).
    static func pnorm4(_ b: NetworkBuilder, _ v: String) throws -> String {
        let ms = b.op("ReduceMean", [b.op("Mul", [v, v]), try b.ints([1])], [Attribute("keepdims", .int(1))])
        let n = b.op("Div", [v, b.op("Sqrt", [b.op("Add", [ms, try b.constant([1e-8], [])])])])
        return b.op("Unsqueeze", [n, try b.ints([2, 3])])
    }

    /// A ResBlock: h = conv(SiLU(GN(x))); h = conv(SiLU(GN(h) * pnorm(s(t)) + pnorm(b(t)))); x' = skip(x) + h.
    static func resBlock(_ b: NetworkBuilder, _ x: String, _ cin: Int, _ cout: Int, temb: String, tdim: Int, groups: Int, _ name: String,
                         dropout: Dropout? = nil) throws -> String {
        try b.scoped(name) {
            var h = try conv(b, silu(b, try groupNorm(b, x, cin, groups: groups, "norm1")), cin, cout, "conv1")
            let s = try pnorm4(b, try linear(b, temb, tdim, cout, "ada_scale"))
            let sh = try pnorm4(b, try linear(b, temb, tdim, cout, "ada_shift"))
            let g = try groupNorm(b, h, cout, groups: groups, "norm2")
            h = silu(b, b.op("Add", [b.op("Mul", [g, s]), sh]))
            if let dropout { h = dropout.apply(b, h) }
            h = try conv(b, h, cout, cout, "conv2")
            let skip = cin == cout ? x : try conv(b, x, cin, cout, "skip", k: 1)
            return b.op("Add", [skip, h])
        }
    }

    /// The dropout of a training graph: each node gets its own salt, every mask is keyed by the
    /// sample's t (see `ai.scm:Dropout`).
    final class Dropout {
        let ratio: Float, key: String
        var nodes = 0
        init(ratio: Float, key: String) {
            self.ratio = ratio
            self.key = key
        }
        func apply(_ b: NetworkBuilder, _ x: String) -> String {
            nodes += 1
            return b.op("Dropout", [x, key], [Attribute("ratio", .float(ratio)), Attribute("salt", .int(nodes))], domain: Model.scmDomain)
        }
    }

    /// Single-head self-attention over the positions, with GroupNorm in front, added back.
    static func attention(_ b: NetworkBuilder, _ x: String, _ c: Int, groups: Int, _ name: String) throws -> String {
        try b.scoped(name) {
            let n = try groupNorm(b, x, c, groups: groups, "norm")
            let seq = b.op("Transpose", [b.op("Reshape", [n, try b.ints([0, c, -1])])], [Attribute("perm", .ints([0, 2, 1]))])
            func proj(_ nm: String, zero: Bool = false) throws -> String {
                try b.scoped(nm) {
                    let w = try b.parameter("w", [c, c]) { zero ? [Float](repeating: 0, count: $0) : b.normal($0, std: 1 / Float(c).squareRoot()) }
                    return b.op("MatMul", [seq, w])
                }
            }
            let q = try proj("q"), k = try proj("k"), v = try proj("v")
            let scores = b.op("Mul", [b.op("MatMul", [q, b.op("Transpose", [k], [Attribute("perm", .ints([0, 2, 1]))])]),
                                      try b.constant([1 / Float(c).squareRoot()], [])])
            let att = b.op("MatMul", [b.op("Softmax", [scores], [Attribute("axis", .int(-1))]), v])
            let out = try b.scoped("out") {
                let w = try b.parameter("w", [c, c]) { [Float](repeating: 0, count: $0) }
                return b.op("MatMul", [att, w])
            }
            let back = b.op("Reshape", [b.op("Transpose", [out], [Attribute("perm", .ints([0, 2, 1]))]), b.op("Shape", [x])])
            return b.op("Add", [x, back])
        }
    }

    static func unet(_ b: NetworkBuilder, _ c: UNetConfig, x: String, t: String, logvar: Bool, dropout ratio: Float = 0) throws -> (String, String?) {
        let dropout = ratio > 0 ? Dropout(ratio: ratio, key: t) : nil
        let feats = try timeFeatures(b, t, channels: c.embedding)
        let tdim = 4 * c.embedding
        let temb = try b.scoped("time") {
            silu(b, try linear(b, silu(b, try linear(b, feats, c.embedding, tdim, "fc1")), tdim, tdim, "fc2"))
        }
        var h = try conv(b, x, c.inChannels, c.widths[0], "conv_in")
        var skips: [(String, Int)] = [(h, c.widths[0])]
        var cin = c.widths[0]
        // The resolution of each level: (r + 1) / 2 below the one above.
        var resolutions = [c.size]
        for _ in 1..<c.widths.count { resolutions.append((resolutions[resolutions.count - 1] + 1) / 2) }
        for (i, w) in c.widths.enumerated() {
            try b.scoped("down\(i)") {
                if i > 0 {
                    h = try conv(b, h, cin, cin, "downsample", stride: 2)
                    skips.append((h, cin))
                }
                for r in 0..<c.resBlocks {
                    h = try resBlock(b, h, cin, w, temb: temb, tdim: tdim, groups: c.groups, "res\(r)", dropout: dropout)
                    cin = w
                    if c.attentionResolutions.contains(resolutions[i]) { h = try attention(b, h, w, groups: c.groups, "attn\(r)") }
                    skips.append((h, w))
                }
            }
        }
        try b.scoped("mid") {
            h = try resBlock(b, h, cin, cin, temb: temb, tdim: tdim, groups: c.groups, "res", dropout: dropout)
        }
        for (i, w) in c.widths.enumerated().reversed() {
            try b.scoped("up\(i)") {
                for r in 0...c.resBlocks {
                    let (s, sc) = skips.removeLast()
                    h = try resBlock(b, b.op("Concat", [h, s], [Attribute("axis", .int(1))]), cin + sc, w, temb: temb, tdim: tdim,
                                     groups: c.groups, "res\(r)", dropout: dropout)
                    cin = w
                    if c.attentionResolutions.contains(resolutions[i]) { h = try attention(b, h, w, groups: c.groups, "attn\(r)") }
                }
                if i > 0 {
                    h = b.op("Resize", [h, "", try b.constant([1, 1, 2, 2], [4])], [Attribute("mode", .string(Array("nearest".utf8)))])
                    h = try conv(b, h, cin, cin, "upsample")
                    let above = resolutions[i - 1]
                    if 2 * resolutions[i] != above {  // an odd size above: crop the last row and column
                        h = b.op("Slice", [h, try b.ints([0, 0]), try b.ints([above, above]), try b.ints([2, 3])])
                    }
                }
            }
        }
        let out = try b.scoped("out") {
            try conv(b, silu(b, try groupNorm(b, h, cin, groups: c.groups, "norm")), cin, c.inChannels, "conv", zero: true)
        }
        let lv = logvar ? try linear(b, feats, c.embedding, 1, "logvar") : nil
        return (b.op("Identity", [out], name: "F"), lv.map { b.op("Identity", [$0], name: "logvar") })
    }

    static func mlp(_ b: NetworkBuilder, _ c: MLPConfig, x: String, t: String, logvar: Bool) throws -> (String, String?) {
        guard c.dim >= 1, c.hidden >= 1, c.layers >= 1, c.embedding >= 2, c.embedding % 2 == 0 else {
            throw TrainError(at: "network", "the MLP needs dim, hidden, layers >= 1 and an even embedding >= 2")
        }
        let feats = try timeFeatures(b, t, channels: c.embedding)
        var h = b.op("Concat", [x, feats], [Attribute("axis", .int(1))])
        var cin = c.dim + c.embedding
        for l in 0..<c.layers {
            h = silu(b, try linear(b, h, cin, c.hidden, "fc\(l)"))
            cin = c.hidden
        }
        let out = try linear(b, h, cin, c.dim, "out", zero: true)
        let lv = logvar ? try linear(b, feats, c.embedding, 1, "logvar") : nil
        return (b.op("Identity", [out], name: "F"), lv.map { b.op("Identity", [$0], name: "logvar") })
    }
}
