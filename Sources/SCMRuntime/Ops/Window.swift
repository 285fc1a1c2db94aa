import SCMGraph

/// One spatial axis of a convolution or pooling window: input size, output size, kernel size,
/// stride, dilation and the pads on each side.
struct WindowAxis: Sendable {
    var size = 1, out = 1, k = 1, s = 1, d = 1, padBegin = 0, padEnd = 0
}

/// The window attributes shared by Conv, ConvTranspose and the pools, validated once: strides,
/// dilations and kernel dims in 1...65536, pads in 0...65536 (larger values only overflow).
struct WindowAttributes {
    var strides: [Int]
    var dilations: [Int]
    var pads: [Int]
    var autoPad: String

    static let bound = 1 << 16

    /// The window attributes of `node` (a Conv, ConvTranspose or pool over `r` spatial dims),
    /// checked; errors name `label`. The ops' builders and their derivative rules read them here.
    static func read(_ node: Node, label: String, rank r: Int, kernel: [Int]) throws -> WindowAttributes {
        func error(_ m: String) -> SCMError { SCMError(.invalidModel, at: label, m) }
        guard kernel.count == r else { throw error("kernel_shape has \(kernel.count) dims for \(r) spatial dims") }
        let strides = try node.ints("strides", at: label) ?? Array(repeating: 1, count: r)
        let dil = try node.ints("dilations", at: label) ?? Array(repeating: 1, count: r)
        let pads = try node.ints("pads", at: label) ?? Array(repeating: 0, count: 2 * r)
        for (name, values, per) in [("strides", strides, 1), ("dilations", dil, 1), ("pads", pads, 2)] where values.count != per * r {
            throw error("\(name) has \(values.count) value\(values.count == 1 ? "" : "s") for \(r) spatial dims (needs \(per * r)\(per == 2 ? ": begin and end of each" : ""))")
        }
        let positive = 1...bound, nonNegative = 0...bound
        guard strides.allSatisfy(positive.contains), dil.allSatisfy(positive.contains),
              pads.allSatisfy(nonNegative.contains), kernel.allSatisfy(positive.contains) else {
            throw error("strides, dilations and kernel dims must be in 1...65536 and pads in 0...65536")
        }
        return WindowAttributes(strides: strides, dilations: dil, pads: pads, autoPad: try node.string("auto_pad", "NOTSET", at: label))
    }

    /// The axes of a window of `kernel` sliding over `spatial`: auto_pad resolved, output sizes
    /// rounded down (or up with `ceil`, dropping a last window that would start in the end padding).
    static func axes(_ ctx: OpContext, spatial: [Int], kernel: [Int], ceil: Bool = false) throws -> [WindowAxis] {
        try axes(ctx.node, label: ctx.label, spatial: spatial, kernel: kernel, ceil: ceil)
    }

    static func axes(_ node: Node, label: String, spatial: [Int], kernel: [Int], ceil: Bool = false) throws -> [WindowAxis] {
        func error(_ m: String) -> SCMError { SCMError(.invalidModel, at: label, m) }
        let r = spatial.count
        var a = try read(node, label: label, rank: r, kernel: kernel)
        var axes: [WindowAxis] = []
        for i in 0..<r {
            let n = spatial[i], s = a.strides[i], ext = (kernel[i] - 1) * a.dilations[i] + 1
            var out: Int
            switch a.autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out = (n + s - 1) / s
                let total = max(0, (out - 1) * s + ext - n)
                a.pads[i] = a.autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                a.pads[i + r] = total - a.pads[i]
            case "VALID", "NOTSET":
                if a.autoPad == "VALID" { a.pads[i] = 0; a.pads[i + r] = 0 }
                let span = n + a.pads[i] + a.pads[i + r] - ext
                guard span >= 0 else { throw error("window \(kernel) is larger than the padded input \(spatial)") }
                out = (ceil ? (span + s - 1) / s : span / s) + 1
                if ceil && (out - 1) * s >= n + a.pads[i] { out -= 1 }
            default: throw error("auto_pad '\(a.autoPad)' is not NOTSET, VALID, SAME_UPPER or SAME_LOWER")
            }
            guard out >= 1 else { throw error("window \(kernel) does not fit input \(spatial) with pads \(a.pads)") }
            axes.append(WindowAxis(size: n, out: out, k: kernel[i], s: s, d: a.dilations[i], padBegin: a.pads[i], padEnd: a.pads[i + r]))
        }
        return axes
    }
}

extension WindowAttributes {
    /// The ops whose window attributes `check(_:)` reads, with the input that holds the weight.
    static let checkedOps: [OpID: Int?] = [.conv: 1, .fusedConv: 1, OpID("ConvTranspose"): 1, OpID("MaxPool"): nil,
                                           OpID("AveragePool"): nil]

    /// Checks the window attributes of every Conv, ConvTranspose and pool of `graph` against the
    /// node's spatial rank, as onnxruntime does when it loads a model, so a file is refused when
    /// it is read rather than when it is compiled: kernel_shape, strides, dilations and pads (and
    /// ConvTranspose's output_padding) must have one value per spatial dimension (pads two), in
    /// range. The rank comes from the declared shape or the initializer of the node's input or
    /// weight, or from kernel_shape; where they disagree the node is refused; where the graph
    /// tells none of them the compiler checks the node later.
    static func check(_ graph: Graph) throws {
        var ranks: [String: Int] = [:]
        for v in graph.inputs + graph.valueInfo { if let s = v.type?.shape { ranks[v.name] = s.count } }
        var weights: [String: [Int]] = [:]
        for t in graph.initializers {
            ranks[t.meta.name] = t.shape.count
            weights[t.meta.name] = t.shape
        }
        for (i, node) in graph.nodes.enumerated() {
            guard let weightInput = checkedOps[node.op] else { continue }
            let label = node.label(index: i)
            func rank(_ input: Int?) -> Int? {
                guard let input, input < node.inputs.count else { return nil }
                return ranks[node.inputs[input]]
            }
            let given = try node.ints("kernel_shape", at: label)
            let claims = [("the input", rank(0).map { $0 - 2 }), ("the weight", rank(weightInput).map { $0 - 2 }),
                          ("kernel_shape", given?.count)]
            let known = claims.compactMap { c in c.1.map { (c.0, $0) } }
            guard let (source, r) = known.first else { continue }
            guard r >= 1 else { throw SCMError(.invalidModel, at: label, "\(source) has no spatial dimensions") }
            if let other = known.first(where: { $0.1 != r }) {
                throw SCMError(.invalidModel, at: label, "\(source) has \(r) spatial dimensions but \(other.0) has \(other.1)")
            }
            let weight = weightInput.flatMap { $0 < node.inputs.count ? weights[node.inputs[$0]] : nil }
            let kernel = given ?? weight.map { Array($0.dropFirst(2)) } ?? Array(repeating: 1, count: r)
            _ = try read(node, label: label, rank: r, kernel: kernel)
            if node.op == OpID("ConvTranspose"), let p = try node.ints("output_padding", at: label), p.count != r {
                throw SCMError(.invalidModel, at: label, "output_padding has \(p.count) value\(p.count == 1 ? "" : "s") for \(r) spatial dims")
            }
        }
    }
}

extension Model {
    /// Throws for a Conv, ConvTranspose or pool whose window attributes do not fit its spatial
    /// rank (`WindowAttributes.check`): the check onnxruntime makes when it loads a model.
    public func checkWindowAttributes() throws(SCMError) {
        try SCMError.wrap { try WindowAttributes.check(graph) }
    }
}
