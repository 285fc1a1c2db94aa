import Foundation
import SCMGraph

// MARK: - Trigonometric, hyperbolic, Round, Sign

/// Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh, Round (half to even) and Sign on
/// float32, elementwise with Foundation's functions.
enum MathUnaryOp: Operator {
    static let opTypes = ["Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Round", "Sign"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        guard x.dtype == .float else { throw ctx.unsupported("input dtype \(x.dtype) is not supported (FLOAT only)") }
        let n = x.count
        let kernel: any Kernel
        switch ctx.node.opType {
        case "Tan": kernel = UnaryKernel<TanF>(count: n, p: 0)
        case "Asin": kernel = UnaryKernel<AsinF>(count: n, p: 0)
        case "Acos": kernel = UnaryKernel<AcosF>(count: n, p: 0)
        case "Atan": kernel = UnaryKernel<AtanF>(count: n, p: 0)
        case "Sinh": kernel = UnaryKernel<SinhF>(count: n, p: 0)
        case "Cosh": kernel = UnaryKernel<CoshF>(count: n, p: 0)
        case "Asinh": kernel = UnaryKernel<AsinhF>(count: n, p: 0)
        case "Acosh": kernel = UnaryKernel<AcoshF>(count: n, p: 0)
        case "Atanh": kernel = UnaryKernel<AtanhF>(count: n, p: 0)
        case "Round": kernel = UnaryKernel<RoundF>(count: n, p: 0)
        default: kernel = UnaryKernel<SignF>(count: n, p: 0)
        }
        return OpBuild(outputs: [x], kernel: kernel, inPlace: [0])
    }
}

enum TanF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.tan(x) } }
enum AsinF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.asin(x) } }
enum AcosF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.acos(x) } }
enum AtanF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.atan(x) } }
enum SinhF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.sinh(x) } }
enum CoshF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.cosh(x) } }
enum AsinhF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.asinh(x) } }
enum AcoshF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.acosh(x) } }
enum AtanhF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.atanh(x) } }
/// Half to even, as numpy.round and ONNX's Round.
enum RoundF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { x.rounded(.toNearestOrEven) } }
/// -1, 0 or 1 (0 for -0.0; NaN stays NaN, as numpy.sign).
enum SignF: UnaryFn {
    @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : (x.isNaN ? x : 0)) }
}

extension MathUnaryOp: ForwardDifferentiable, ReverseDifferentiable {
    /// Round and Sign are piecewise constant: no tangent (zero).
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0), !["Round", "Sign"].contains(r.node.opType) else { return [nil] }
        return [scaled(r, d)]
    }

    /// Round and Sign are piecewise constant: no cotangent (zero).
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0), !["Round", "Sign"].contains(r.node.opType) else { return [nil] }
        return [scaled(r, g)]
    }

    /// d f'(x) (a diagonal Jacobian: the tangent of the output and the cotangent of x alike).
    static func scaled(_ r: some RuleEmitter, _ d: String) -> String {
        let x = r.input(0), y = r.output(0), one = r.scalar(1)
        switch r.node.opType {
        case "Tan": return r.mul(d, r.plus(one, r.mul(y, y)))                                  // d (1 + tan^2 x)
        case "Asin": return r.div(d, r.emit("Sqrt", [r.sub(one, r.mul(x, x))]))               // d / sqrt(1 - x^2)
        case "Acos": return r.neg(r.div(d, r.emit("Sqrt", [r.sub(one, r.mul(x, x))])))        // -d / sqrt(1 - x^2)
        case "Atan": return r.div(d, r.plus(one, r.mul(x, x)))                                 // d / (1 + x^2)
        case "Sinh": return r.mul(d, r.emit("Cosh", [x]))
        case "Cosh": return r.mul(d, r.emit("Sinh", [x]))
        case "Asinh": return r.div(d, r.emit("Sqrt", [r.plus(r.mul(x, x), one)]))             // d / sqrt(x^2 + 1)
        case "Acosh": return r.div(d, r.emit("Sqrt", [r.sub(r.mul(x, x), one)]))              // d / sqrt(x^2 - 1)
        default: return r.div(d, r.sub(one, r.mul(x, x)))                                      // Atanh: d / (1 - x^2)
        }
    }
}

// MARK: - Activations

/// The elementwise function of an activation with up to two float parameters.
protocol UnaryFn2 {
    static func f(_ x: Float, _ a: Float, _ b: Float) -> Float
}

struct Unary2Kernel<F: UnaryFn2>: Kernel {
    let count: Int
    let a: Float
    let b: Float
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self), a = a, b = b
        parallelElements(count, io.pool) { r in for i in r { y[i] = F.f(x[i], a, b) } }
    }
}

/// alpha (exp(x) - 1) below 0, x above.
enum EluF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float { x < 0 ? a * (Foundation.exp(x) - 1) : x }
}
/// gamma (alpha exp(x) - alpha) at or below 0, gamma x above (a = alpha, b = gamma).
enum SeluF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float { x > 0 ? b * x : b * (a * Foundation.exp(x) - a) }
}
/// max(0, x) + min(0, alpha (exp(x / alpha) - 1)).
enum CeluF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float {
        max(0, x) + min(0, a * (Foundation.exp(x / a) - 1))
    }
}
/// max(0, min(1, alpha x + beta)).
enum HardSigmoidF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float { max(0, min(1, a * x + b)) }
}
/// x max(0, min(1, x / 6 + 1/2)).
enum HardSwishF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float { x * max(0, min(1, x * (1 / 6) + 0.5)) }
}
/// x / (1 + |x|).
enum SoftsignF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float { x / (1 + abs(x)) }
}
/// x above alpha, 0 elsewhere.
enum ThresholdedReluF: UnaryFn2 {
    @inline(__always) static func f(_ x: Float, _ a: Float, _ b: Float) -> Float { x > a ? x : 0 }
}

/// Elu, Selu, Celu, HardSigmoid, HardSwish, Softsign, ThresholdedRelu on float32, their
/// parameters from the (type-checked) attributes with ONNX's defaults.
enum ActivationOp: Operator {
    static let opTypes = ["Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softsign", "ThresholdedRelu"]

    /// The op's two parameters (0 where unused).
    static func parameters(_ op: String, _ float: (String, Float) throws -> Float) throws -> (Float, Float) {
        switch op {
        case "Elu", "Celu", "ThresholdedRelu": return (try float("alpha", 1), 0)
        case "Selu": return (try float("alpha", 1.67326319217681884765625), try float("gamma", 1.05070102214813232421875))
        case "HardSigmoid": return (try float("alpha", 0.2), try float("beta", 0.5))
        default: return (0, 0)
        }
    }

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        guard x.dtype == .float else { throw ctx.unsupported("input dtype \(x.dtype) is not supported (FLOAT only)") }
        let op = ctx.node.opType, n = x.count
        if op == "HardSwish" { guard ctx.opset >= 14 else { throw ctx.unsupported("HardSwish needs opset 14") } }
        let (a, b) = try parameters(op) { try ctx.float($0, $1) }
        if op == "Celu" { guard a != 0 else { throw ctx.error("attribute 'alpha' must not be 0") } }
        let kernel: any Kernel
        switch op {
        case "Elu": kernel = Unary2Kernel<EluF>(count: n, a: a, b: b)
        case "Selu": kernel = Unary2Kernel<SeluF>(count: n, a: a, b: b)
        case "Celu": kernel = Unary2Kernel<CeluF>(count: n, a: a, b: b)
        case "HardSigmoid": kernel = Unary2Kernel<HardSigmoidF>(count: n, a: a, b: b)
        case "HardSwish": kernel = Unary2Kernel<HardSwishF>(count: n, a: a, b: b)
        case "Softsign": kernel = Unary2Kernel<SoftsignF>(count: n, a: a, b: b)
        default: kernel = Unary2Kernel<ThresholdedReluF>(count: n, a: a, b: b)
        }
        return OpBuild(outputs: [x], kernel: kernel, inPlace: [0])
    }
}

extension ActivationOp: ForwardDifferentiable, ReverseDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        return [try scaled(r, d)]
    }

    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil] }
        return [try scaled(r, g)]
    }

    /// d f'(x), piecewise through Where (at a kink the side the kernel's comparison picks).
    static func scaled(_ r: some RuleEmitter, _ d: String) throws -> String {
        let x = r.input(0), y = r.output(0), zero = r.scalar(0), one = r.scalar(1)
        let (a, b) = try parameters(r.node.opType) { Float(try r.floatAttribute($0, $1)) }
        let alpha = Double(a), beta = Double(b)
        switch r.node.opType {
        case "Elu":                                                    // x < 0: alpha exp(x) = y + alpha
            return r.emit("Where", [r.emit("Less", [x, zero]), r.mul(d, r.plus(y, r.scalar(alpha))), d])
        case "Selu":                                                   // x <= 0: gamma alpha exp(x) = y + gamma alpha
            return r.emit("Where", [r.emit("Greater", [x, zero]), r.mul(d, r.scalar(beta)),
                                    r.mul(d, r.plus(y, r.scalar(alpha * beta)))])
        case "Celu":                                                   // x <= 0: exp(x / alpha)
            return r.emit("Where", [r.emit("Greater", [x, zero]), d, r.mul(d, r.emit("Exp", [r.mul(x, r.scalar(1 / alpha))]))])
        case "HardSigmoid", "HardSwish":
            // v = alpha x + beta; inside 0 < v < 1 the slope (alpha, or x / 3 + 1/2 for HardSwish).
            let (sa, sb) = r.node.opType == "HardSwish" ? (1.0 / 6, 0.5) : (alpha, beta)
            let v = r.plus(r.mul(x, r.scalar(sa)), r.scalar(sb))
            let inside = r.node.opType == "HardSwish" ? r.mul(d, r.plus(r.mul(x, r.scalar(1.0 / 3)), r.scalar(0.5))) : r.mul(d, r.scalar(sa))
            let above = r.node.opType == "HardSwish" ? d : zero
            return r.emit("Where", [r.emit("Less", [v, zero]), zero, r.emit("Where", [r.emit("Greater", [v, one]), above, inside])])
        case "Softsign":                                               // d / (1 + |x|)^2
            let s = r.plus(one, r.emit("Abs", [x]))
            return r.div(d, r.mul(s, s))
        default:                                                       // ThresholdedRelu
            return r.emit("Where", [r.emit("Greater", [x, r.scalar(alpha)]), d, zero])
        }
    }
}

// MARK: - PRelu

enum PReluFn: BinaryFn { @inline(__always) static func f(_ x: Float, _ s: Float) -> Float { x < 0 ? s * x : x } }

/// PRelu(X, slope): slope x below 0, x elsewhere; slope broadcasts unidirectionally to X.
enum PReluOp: Operator {
    static let opTypes = ["PRelu"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0), s = try ctx.input(1)
        guard x.dtype == .float else { throw ctx.unsupported("input dtype \(x.dtype) is not supported (FLOAT only)") }
        try ctx.require(s, in: [.float], "slope")
        guard Shapes.broadcast(x.shape, s.shape) == x.shape else {
            throw ctx.error("slope shape \(s.shape) does not broadcast to X's \(x.shape)")
        }
        let loop = BroadcastLoop(output: x.shape, inputs: [x.shape, s.shape])
        return OpBuild(outputs: [x], kernel: PReluKernel(loop: loop), inPlace: [0])
    }
}

struct PReluKernel: Kernel {
    let loop: BroadcastLoop
    func run(_ io: KernelIO) {
        loop.run2(PReluFn.self, io.input(0, Float.self), io.input(1, Float.self), io.output(0, Float.self), io.pool)
    }
}

extension PReluOp: ForwardDifferentiable, ReverseDifferentiable {
    /// Below 0: slope dx + x dslope; elsewhere dx.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let dx = r.tangent(0), ds = r.tangent(1)
        guard dx != nil || ds != nil else { return [nil] }
        let x = r.input(0), s = r.input(1), zero = r.scalar(0)
        let below = r.add(dx.map { r.mul($0, s) }, ds.map { r.mul(x, $0) })!  // X's shape (x or dx broadcasts it)
        return [r.emit("Where", [r.emit("Less", [x, zero]), below, dx ?? zero])]
    }

    /// X: g slope below 0, g elsewhere; slope: g x below 0, summed over the axes it broadcasts along.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil] }
        let x = r.input(0), s = r.input(1), zero = r.scalar(0)
        let below = r.emit("Less", [x, zero])
        return [r.needs(0) ? r.emit("Where", [below, r.mul(g, s), g]) : nil,
                r.needs(1) ? r.unbroadcast(r.emit("Where", [below, r.mul(g, x), zero]), toInput: 1) : nil]
    }
}
