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
        guard strides.count == r, dil.count == r, pads.count == 2 * r else {
            throw error("strides/dilations/pads do not match \(r) spatial dims")
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
