import Foundation
import SCM

/// Changes to a preset network from the command line (nil: the preset's). Flags of the other
/// network kind are errors naming the flag.
public struct NetworkOverrides: Sendable {
    public var dropout: Float
    public var widths: String?, resBlocks: Int?, attention: String?, embedding: Int?, groups: Int?
    public var hidden: Int?, layers: Int?

    public init(dropout: Float = 0, widths: String? = nil, resBlocks: Int? = nil, attention: String? = nil, embedding: Int? = nil,
                groups: Int? = nil, hidden: Int? = nil, layers: Int? = nil) {
        self.dropout = dropout
        self.widths = widths
        self.resBlocks = resBlocks
        self.attention = attention
        self.embedding = embedding
        self.groups = groups
        self.hidden = hidden
        self.layers = layers
    }

    static func list(_ text: String, _ flag: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw SCMError(at: flag, "must be a comma-separated list of positive integers, is '\(text)'")
        }
        return parts.map { $0 ?? 1 }
    }

    func checkedEmbedding() throws -> Int? {
        guard let e = embedding else { return nil }
        guard e >= 2, e % 2 == 0, e <= 4096 else { throw SCMError(at: "--embedding", "must be even and in 2...4096, is \(e)") }
        return e
    }

    public func apply(to config: NetworkConfig, data: String) throws -> NetworkConfig {
        switch config {
        case .unet(var c):
            for (flag, set) in [("--hidden", hidden != nil), ("--layers", layers != nil)] where set {
                throw SCMError(at: flag, "applies to the MLP of vector data; \(data) trains a UNet")
            }
            c.dropout = dropout
            if let w = widths {
                c.widths = try Self.list(w, "--widths")
                guard c.widths.count <= 8 else { throw SCMError(at: "--widths", "at most 8 levels, given \(c.widths.count)") }
            }
            if let r = resBlocks {
                guard (1...16).contains(r) else { throw SCMError(at: "--res-blocks", "must be in 1...16, is \(r)") }
                c.resBlocks = r
            }
            if let e = try checkedEmbedding() { c.embedding = e }
            if let g = groups {
                guard g >= 1, c.widths.allSatisfy({ $0 % g == 0 }) else {
                    throw SCMError(at: "--groups", "\(g) must divide every width \(c.widths)")
                }
                c.groups = g
            } else if !c.widths.allSatisfy({ $0 % c.groups == 0 }) {
                throw SCMError(at: "--widths", "\(c.widths) must be multiples of the GroupNorm groups (\(c.groups); see --groups)")
            }
            var resolutions = [c.size]
            for _ in 1..<c.widths.count { resolutions.append((resolutions[resolutions.count - 1] + 1) / 2) }
            if let a = attention {
                c.attentionResolutions = a == "none" ? [] : try Self.list(a, "--attention")
                if let twice = c.attentionResolutions.first(where: { r in c.attentionResolutions.filter { $0 == r }.count > 1 }) {
                    throw SCMError(at: "--attention", "lists resolution \(twice) twice: give each level once")
                }
                for r in c.attentionResolutions where !resolutions.contains(r) {
                    throw SCMError(at: "--attention", "resolution \(r) is not one of the UNet's levels \(resolutions)")
                }
            } else {
                c.attentionResolutions = [resolutions[resolutions.count - 1]]
            }
            return .unet(c)
        case .mlp(var c):
            for (flag, set) in [("--dropout", dropout != 0), ("--widths", widths != nil), ("--res-blocks", resBlocks != nil),
                                ("--attention", attention != nil), ("--groups", groups != nil)] where set {
                throw SCMError(at: flag, "applies to the UNet of image data; \(data) trains an MLP")
            }
            if let h = hidden {
                guard (1...65536).contains(h) else { throw SCMError(at: "--hidden", "must be in 1...65536, is \(h)") }
                c.hidden = h
            }
            if let l = layers {
                guard (1...64).contains(l) else { throw SCMError(at: "--layers", "must be in 1...64, is \(l)") }
                c.layers = l
            }
            if let e = try checkedEmbedding() { c.embedding = e }
            return .mlp(c)
        }
    }
}
