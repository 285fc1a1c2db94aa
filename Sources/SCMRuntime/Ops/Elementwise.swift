import CKernels
import Foundation
import SCMGraph

// MARK: - Unary float ops

/// Abs, Neg, Sqrt, Reciprocal, Exp, Log, Sin, Cos, Tanh, Erf, Sigmoid, Relu, LeakyRelu, Gelu,
/// Softplus, Mish on float32 (Abs, Neg, Relu also on the integer types).
enum UnaryOp: Operator {
    static let opTypes = ["Abs", "Neg", "Sqrt", "Reciprocal", "Exp", "Log", "Sin", "Cos", "Tanh", "Erf", "Sigmoid",
                          "Relu", "LeakyRelu", "Gelu", "Softplus", "Mish"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        let op = ctx.node.opType
        var param: Float = 0
        switch op {
        case "LeakyRelu": param = try ctx.float("alpha", 0.01)
        case "Gelu":
            guard ctx.opset >= 20 else { throw ctx.unsupported("Gelu needs opset 20") }
            switch try ctx.string("approximate", "none") {
            case "none": param = 0
            case "tanh": param = 1
            case let s: throw ctx.error("approximate '\(s)' is not 'none' or 'tanh'")
            }
        default: break
        }
        if x.dtype != .float {
            guard ["Abs", "Neg", "Relu"].contains(op), arithmeticDTypes.contains(x.dtype) else {
                throw ctx.unsupported("input dtype \(x.dtype) is not supported (FLOAT only)")
            }
            return OpBuild(outputs: [x], kernel: IntUnaryKernel(op: op, dtype: x.dtype, count: x.count), inPlace: [0])
        }
        let kernel: any Kernel
        switch op {
        case "Abs": kernel = UnaryKernel<AbsF>(count: x.count, p: param)
        case "Neg": kernel = UnaryKernel<NegF>(count: x.count, p: param)
        case "Sqrt": kernel = UnaryKernel<SqrtF>(count: x.count, p: param)
        case "Reciprocal": kernel = UnaryKernel<RecipF>(count: x.count, p: param)
        case "Exp": kernel = UnaryKernel<ExpF>(count: x.count, p: param)
        case "Log": kernel = UnaryKernel<LogF>(count: x.count, p: param)
        case "Sin": kernel = UnaryKernel<SinF>(count: x.count, p: param)
        case "Cos": kernel = UnaryKernel<CosF>(count: x.count, p: param)
        case "Tanh": kernel = UnaryKernel<TanhF>(count: x.count, p: param)
        case "Erf": kernel = UnaryKernel<ErfF>(count: x.count, p: param)
        case "Sigmoid": kernel = SigmoidKernel(count: x.count)
        case "Relu": kernel = UnaryKernel<ReluF>(count: x.count, p: param)
        case "LeakyRelu": kernel = UnaryKernel<LeakyReluF>(count: x.count, p: param)
        case "Softplus": kernel = UnaryKernel<SoftplusF>(count: x.count, p: param)
        case "Mish":
            guard ctx.opset >= 18 else { throw ctx.unsupported("Mish needs opset 18") }
            kernel = UnaryKernel<MishF>(count: x.count, p: param)
        default: kernel = param == 0 ? UnaryKernel<GeluF>(count: x.count, p: 0) : UnaryKernel<GeluTanhF>(count: x.count, p: 0)
        }
        return OpBuild(outputs: [x], kernel: kernel, inPlace: [0])
    }
}

struct UnaryKernel<F: UnaryFn>: Kernel {
    let count: Int
    let p: Float
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self), p = p
        parallelElements(count, io.pool) { r in for i in r { y[i] = F.f(x[i], p) } }
    }
}

enum AbsF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { abs(x) } }
enum NegF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { -x } }
enum SqrtF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { x.squareRoot() } }
enum RecipF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { 1 / x } }
enum ExpF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.exp(x) } }
enum LogF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.log(x) } }
enum SinF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.sin(x) } }
enum CosF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.cos(x) } }
/// log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)): no overflow for large x, exact for negative.
enum SoftplusF: UnaryFn {
    @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { max(x, 0) + Foundation.log1p(Foundation.exp(-abs(x))) }
}
/// x tanh(softplus(x)) (PyTorch's F.mish, ONNX's Mish since opset 18).
enum MishF: UnaryFn {
    @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { x * Foundation.tanh(SoftplusF.f(x, 0)) }
}
enum TanhF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.tanh(x) } }
enum ErfF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { Foundation.erf(x) } }
enum SigmoidF: UnaryFn {
    @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { sigmoid(x) }
}
/// Sigmoid as 1 / (1 + exp(-x)) with the vectorized exp.
struct SigmoidKernel: Kernel {
    let count: Int
    func run(_ io: KernelIO) {
        let x = io.input(0, Float.self), y = io.output(0, Float.self)
        parallelElements(count, io.pool) { r in
            if KernelChoice.vector {
                scm_sigmoid(x + r.lowerBound, y + r.lowerBound, Int64(r.count))
            } else {
                map8(x + r.lowerBound, y + r.lowerBound, r.count) { v in 1 / (1 + exp8(-v)) }
            }
        }
    }
}

enum ReluF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { x > 0 ? x : 0 } }
enum LeakyReluF: UnaryFn { @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { x >= 0 ? x : x * p } }
enum GeluF: UnaryFn {
    @inline(__always) static func f(_ x: Float, _ p: Float) -> Float { 0.5 * x * (1 + Foundation.erf(x * 0.70710678118654752)) }
}
enum GeluTanhF: UnaryFn {
    @inline(__always) static func f(_ x: Float, _ p: Float) -> Float {
        0.5 * x * (1 + Foundation.tanh(0.79788456080286536 * (x + 0.044715 * x * x * x)))
    }
}

/// The logistic function, stable for large |x|.
@inline(__always) func sigmoid(_ x: Float) -> Float {
    if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
    let e = Foundation.exp(x)
    return e / (1 + e)
}

struct IntUnaryKernel: Kernel {
    let op: String
    let dtype: DType
    let count: Int
    func run(_ io: KernelIO) {
        withArithType(dtype) { go($0, io) }
    }
    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.output(0, T.self)
        let zero = T(fromDouble: 0)  // not x[0] - x[0]: the input may be empty
        switch op {
        case "Neg": for i in 0..<count { y[i] = T.sub(zero, x[i]) }
        case "Abs": for i in 0..<count { y[i] = x[i] < zero ? T.sub(zero, x[i]) : x[i] }
        default: for i in 0..<count { y[i] = x[i] > zero ? x[i] : zero }
        }
    }
}

// MARK: - Binary arithmetic

enum AddFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.add(a, b) } }
enum SubFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.sub(a, b) } }
enum MulFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.mul(a, b) } }
enum DivFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.div(a, b) } }
enum ModFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.mod(a, b, fmod: false) } }
enum FModFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.mod(a, b, fmod: true) } }
enum PowFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.pow(a, b) } }
enum MinFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.minimum(a, b) } }
enum MaxFn<T: ArithScalar>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { T.maximum(a, b) } }
/// Pow with an exponent of another type: computed in double, as onnxruntime does for mixed types.
enum MixedPowFn<T: ArithScalar, E: ArithScalar>: BinaryFn {
    @inline(__always) static func f(_ a: T, _ b: E) -> T { T(fromDouble: Foundation.pow(a.asDouble, b.asDouble)) }
}
enum CopyFirstFn<T>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> T { a } }

/// Add, Sub, Mul, Div, Pow with numpy broadcasting, on float32/64 and the integer types.
enum BinaryOp: Operator {
    static let opTypes = ["Add", "Sub", "Mul", "Div", "Pow", "Mod"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let a = try ctx.input(0), b = try ctx.input(1)
        var op = ctx.node.opType
        if op == "Mod" {
            let fmod = try ctx.int("fmod", 0)
            guard fmod == 0 || fmod == 1 else { throw ctx.error("attribute 'fmod' must be 0 or 1, is \(fmod)") }
            if fmod == 1 { op = "FMod" }
        }
        try ctx.require(a, in: arithmeticDTypes)
        try ctx.require(b, in: arithmeticDTypes)
        guard a.dtype == b.dtype || ctx.node.opType == "Pow" else {
            throw ctx.error("inputs have different dtypes \(a.dtype) and \(b.dtype)")
        }
        guard let shape = Shapes.broadcast(a.shape, b.shape) else {
            throw ctx.error("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = TensorSpec(a.dtype, shape)
        let loop = BroadcastLoop(output: shape, inputs: [a.shape, b.shape])
        var inPlace: [Int] = []
        if a.shape == shape { inPlace.append(0) }
        if b.shape == shape && a.dtype == b.dtype { inPlace.append(1) }
        return OpBuild(outputs: [out], kernel: BinaryKernel(op: op, a: a.dtype, b: b.dtype, loop: loop),
                       inPlace: inPlace)
    }
}

struct BinaryKernel: Kernel {
    let op: String
    let a: DType
    let b: DType
    let loop: BroadcastLoop

    func run(_ io: KernelIO) {
        if a == .float && b == .float {
            go(Float.self, io)  // the common case, without existential dispatch
        } else if a == b {
            withArithType(a) { go($0, io) }
        } else {
            withArithType(a) { ta in withArithType(b) { tb in mixedPow(ta, tb, io) } }
        }
    }

    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.input(1, T.self), o = io.output(0, T.self)
        switch op {
        case "Add": loop.run2(AddFn<T>.self, x, y, o, io.pool)
        case "Sub": loop.run2(SubFn<T>.self, x, y, o, io.pool)
        case "Mul": loop.run2(MulFn<T>.self, x, y, o, io.pool)
        case "Div": loop.run2(DivFn<T>.self, x, y, o, io.pool)
        case "Mod": loop.run2(ModFn<T>.self, x, y, o, io.pool)
        case "FMod": loop.run2(FModFn<T>.self, x, y, o, io.pool)
        default: loop.run2(PowFn<T>.self, x, y, o, io.pool)
        }
    }

    func mixedPow<T: ArithScalar, E: ArithScalar>(_: T.Type, _: E.Type, _ io: KernelIO) {
        loop.run2(MixedPowFn<T, E>.self, io.input(0, T.self), io.input(1, E.self), io.output(0, T.self), io.pool)
    }
}

// MARK: - Comparisons

enum EqFn<T: Equatable>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> UInt8 { a == b ? 1 : 0 } }
enum LtFn<T: Comparable>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> UInt8 { a < b ? 1 : 0 } }
enum GtFn<T: Comparable>: BinaryFn { @inline(__always) static func f(_ a: T, _ b: T) -> UInt8 { a > b ? 1 : 0 } }

/// Equal, Less, Greater with broadcasting; output bool.
enum CompareOp: Operator {
    static let opTypes = ["Equal", "Less", "Greater"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.require(a, in: arithmeticDTypes.union([.bool]))
        guard a.dtype == b.dtype else { throw ctx.error("inputs have different dtypes \(a.dtype) and \(b.dtype)") }
        guard let shape = Shapes.broadcast(a.shape, b.shape) else {
            throw ctx.error("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        return OpBuild(outputs: [TensorSpec(.bool, shape)],
                       kernel: CompareKernel(op: ctx.node.opType, dtype: a.dtype,
                                             loop: BroadcastLoop(output: shape, inputs: [a.shape, b.shape])))
    }
}

struct CompareKernel: Kernel {
    let op: String
    let dtype: DType
    let loop: BroadcastLoop
    func run(_ io: KernelIO) {
        if dtype == .bool { go(UInt8.self, io) } else { withArithType(dtype) { go($0, io) } }
    }
    func go<T: Comparable>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.input(1, T.self), o = io.output(0, UInt8.self)
        switch op {
        case "Equal": loop.run2(EqFn<T>.self, x, y, o, io.pool)
        case "Less": loop.run2(LtFn<T>.self, x, y, o, io.pool)
        default: loop.run2(GtFn<T>.self, x, y, o, io.pool)
        }
    }
}

// MARK: - Min / Max (variadic)

/// Min and Max over one or more inputs with broadcasting.
enum VariadicMinMax: Operator {
    static let opTypes = ["Min", "Max"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 64)
        var specs: [TensorSpec] = []
        for i in 0..<ctx.inputCount { specs.append(try ctx.input(i)) }
        try ctx.require(specs[0], in: arithmeticDTypes)
        var shape = specs[0].shape
        for s in specs.dropFirst() {
            guard s.dtype == specs[0].dtype else { throw ctx.error("inputs have different dtypes") }
            guard let b = Shapes.broadcast(shape, s.shape) else { throw ctx.error("input shapes do not broadcast") }
            shape = b
        }
        let first = BroadcastLoop(output: shape, inputs: [specs[0].shape, specs[0].shape])
        let rest = specs.dropFirst().map { BroadcastLoop(output: shape, inputs: [shape, $0.shape]) }
        return OpBuild(outputs: [TensorSpec(specs[0].dtype, shape)],
                       kernel: MinMaxKernel(isMax: ctx.node.opType == "Max", dtype: specs[0].dtype, first: first, rest: Array(rest)))
    }
}

struct MinMaxKernel: Kernel {
    let isMax: Bool
    let dtype: DType
    let first: BroadcastLoop
    let rest: [BroadcastLoop]
    func run(_ io: KernelIO) { withArithType(dtype) { go($0, io) } }
    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let o = io.output(0, T.self)
        first.run2(CopyFirstFn<T>.self, io.input(0, T.self), io.input(0, T.self), o, io.pool)
        for (k, loop) in rest.enumerated() {
            if isMax {
                loop.run2(MaxFn<T>.self, UnsafePointer(o), io.input(k + 1, T.self), o, io.pool)
            } else {
                loop.run2(MinFn<T>.self, UnsafePointer(o), io.input(k + 1, T.self), o, io.pool)
            }
        }
    }
}

// MARK: - Where

/// Where(cond, X, Y) with three-way broadcasting; X and Y of any fixed-width dtype.
enum WhereOp: Operator {
    static let opTypes = ["Where"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 3)
        let c = try ctx.input(0), x = try ctx.input(1), y = try ctx.input(2)
        try ctx.require(c, in: [.bool], "condition")
        guard x.dtype == y.dtype else { throw ctx.error("X is \(x.dtype), Y is \(y.dtype)") }
        guard let s1 = Shapes.broadcast(c.shape, x.shape), let shape = Shapes.broadcast(s1, y.shape) else {
            throw ctx.error("shapes \(c.shape), \(x.shape), \(y.shape) do not broadcast")
        }
        return OpBuild(outputs: [TensorSpec(x.dtype, shape)],
                       kernel: WhereKernel(width: x.elementBytes, loop: BroadcastLoop(output: shape, inputs: [c.shape, x.shape, y.shape])))
    }
}

struct WhereKernel: Kernel {
    let width: Int
    let loop: BroadcastLoop
    func run(_ io: KernelIO) {
        switch width {
        case 1: go(UInt8.self, io)
        case 2: go(UInt16.self, io)
        case 4: go(UInt32.self, io)
        default: go(UInt64.self, io)
        }
    }
    func go<T>(_: T.Type, _ io: KernelIO) {
        let c = io.input(0, UInt8.self), x = io.input(1, T.self), y = io.input(2, T.self), o = io.output(0, T.self)
        let inner = loop.inner, s = loop.innerStrides
        io.pool.parallelFor(loop.chunks) { ch, _ in
            loop.forEach(chunk: ch) { r, range in
                let lo = range.lowerBound
                let pc = c + loop.offset(r, 0) + s[0] * lo, px = x + loop.offset(r, 1) + s[1] * lo
                let py = y + loop.offset(r, 2) + s[2] * lo, po = o + r * inner + lo
                for i in 0..<range.count { po[i] = pc[i * s[0]] != 0 ? px[i * s[1]] : py[i * s[2]] }
            }
        }
    }
}

// MARK: - Clip

/// Clip(x, min?, max?) (opset 11+ input form); bounds must be known at compile time.
enum ClipOp: Operator {
    static let opTypes = ["Clip"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 3)
        let x = try ctx.input(0)
        try ctx.require(x, in: arithmeticDTypes)
        func bound(_ i: Int, _ role: String) throws -> Double? {
            guard ctx.has(i) else { return nil }
            let t = try ctx.value(i, role)
            guard t.dtype == x.dtype, t.elementCount == 1 else { throw ctx.error("\(role) must be a scalar \(x.dtype)") }
            return withArithType(t.dtype) { ty in readScalar(ty, t) }
        }
        let lo = try bound(1, "min"), hi = try bound(2, "max")
        return OpBuild(outputs: [x], kernel: ClipKernel(dtype: x.dtype, count: x.count, lo: lo, hi: hi), inPlace: [0])
    }

    static func readScalar<T: ArithScalar>(_: T.Type, _ t: Tensor) -> Double { t.storage!.bytes.load(as: T.self).asDouble }
}

struct ClipKernel: Kernel {
    let dtype: DType
    let count: Int
    let lo: Double?
    let hi: Double?
    func run(_ io: KernelIO) { withArithType(dtype) { go($0, io) } }
    func go<T: ArithScalar>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.output(0, T.self)
        let lo = lo.map { T(fromDouble: $0) }, hi = hi.map { T(fromDouble: $0) }
        parallelElements(count, io.pool) { r in
            for i in r {
                var v = x[i]
                if let lo, v < lo { v = lo }
                if let hi, v > hi { v = hi }  // min > max gives max, as numpy.clip
                y[i] = v
            }
        }
    }
}

// MARK: - Forward-mode rules

extension UnaryOp: ForwardDifferentiable, ReverseDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return [nil] }
        return [try scaled(r, d)]
    }

    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil] }
        return [try scaled(r, g)]
    }

    /// d f'(x): the tangent of the output for a tangent d of x, and (the derivative being a
    /// diagonal Jacobian) the cotangent of x for a cotangent d of the output.
    static func scaled(_ r: some RuleEmitter, _ d: String) throws -> String {
        let x = r.input(0), y = r.output(0)
        switch r.node.opType {
        case "Neg": return r.neg(d)
        case "Abs": return r.emit("Where", [r.emit("Less", [x, r.scalar(0)]), r.neg(d), d])
        case "Sqrt": return r.div(r.mul(d, r.scalar(0.5)), y)                       // d / (2 sqrt x)
        case "Reciprocal": return r.neg(r.mul(d, r.mul(y, y)))                     // -d / x^2
        case "Exp": return r.mul(d, y)
        case "Log": return r.div(d, x)
        case "Sin": return r.mul(d, r.emit("Cos", [x]))
        case "Cos": return r.neg(r.mul(d, r.emit("Sin", [x])))
        case "Tanh": return r.mul(d, r.sub(r.scalar(1), r.mul(y, y)))              // d (1 - y^2)
        case "Sigmoid": return r.mul(d, r.mul(y, r.sub(r.scalar(1), y)))           // d y (1 - y)
        case "Softplus": return r.mul(d, r.emit("Sigmoid", [x]))                      // d sigmoid(x)
        case "Mish":                                          // d (tanh s + x (1 - tanh^2 s) sigmoid(x)), s = softplus(x)
            let th = r.emit("Tanh", [r.emit("Softplus", [x])])
            let second = r.mul(x, r.mul(r.sub(r.scalar(1), r.mul(th, th)), r.emit("Sigmoid", [x])))
            return r.mul(d, r.plus(th, second))
        case "Erf":                                                                  // d 2/sqrt(pi) exp(-x^2)
            return r.mul(d, r.mul(r.scalar(2 / Double.pi.squareRoot()), r.emit("Exp", [r.neg(r.mul(x, x))])))
        case "Relu": return r.emit("Where", [r.emit("Greater", [x, r.scalar(0)]), d, r.scalar(0)])
        case "LeakyRelu":
            let alpha = Double(r.node.attribute("alpha").flatMap { if case .float(let v) = $0.value { v } else { nil } } ?? 0.01)
            return r.emit("Where", [r.emit("Less", [x, r.scalar(0)]), r.mul(d, r.scalar(alpha)), d])
        case "Gelu":
            let approximate = r.node.attribute("approximate")?.stringValue ?? "none"
            if approximate == "tanh" {
                // y = x/2 (1 + tanh u), u = k (x + c x^3): y' = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) k (1 + 3c x^2)
                let k = (2 / Double.pi).squareRoot(), c = 0.044715
                let x2 = r.mul(x, x)
                let u = r.mul(r.scalar(k), r.add(x, r.mul(r.scalar(c), r.mul(x2, x)))!)
                let th = r.emit("Tanh", [u])
                let first = r.mul(r.scalar(0.5), r.add(r.scalar(1), th)!)
                let du = r.mul(r.scalar(k), r.add(r.scalar(1), r.mul(r.scalar(3 * c), x2))!)
                let second = r.mul(r.mul(r.scalar(0.5), x), r.mul(r.sub(r.scalar(1), r.mul(th, th)), du))
                return r.mul(d, r.add(first, second)!)
            }
            // y = x Phi(x): y' = Phi(x) + x phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, phi(x) = exp(-x^2/2) / sqrt(2 pi)
            let phiCdf = r.mul(r.scalar(0.5), r.add(r.scalar(1), r.emit("Erf", [r.mul(x, r.scalar(1 / 2.0.squareRoot()))]))!)
            let pdf = r.mul(r.scalar(1 / (2 * Double.pi).squareRoot()), r.emit("Exp", [r.mul(r.mul(x, x), r.scalar(-0.5))]))
            return r.mul(d, r.add(phiCdf, r.mul(x, pdf))!)
        default:
            throw r.error("op \(r.node.opType) has no derivative rule")
        }
    }
}

extension BinaryOp: ForwardDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let a = r.input(0), b = r.input(1), y = r.output(0)
        let da = r.tangent(0), db = r.tangent(1)
        switch r.node.opType {
        case "Add":
            return [r.add(da.map { r.broadcast($0, input: 0) }, db.map { r.broadcast($0, input: 1) })]
        case "Sub":
            return [r.add(da.map { r.broadcast($0, input: 0) }, db.map { r.neg(r.broadcast($0, input: 1)) })]
        case "Mod":
            // fmod(a, b) = a - trunc(a / b) b: 1 along a (piecewise); b's derivative has no rule yet.
            guard db == nil else { throw r.error("Mod has no forward-mode (JVP) rule for its divisor") }
            return [da.map { r.broadcast($0, input: 0) }]
        case "Mul":
            // Each product has the output's shape (the other factor broadcasts it).
            return [r.add(da.map { r.mul($0, b) }, db.map { r.mul(a, $0) })]
        case "Div":
            // d(a/b) = da/b - y db/b
            return [r.add(da.map { r.div($0, b) }, db.map { r.neg(r.div(r.mul(y, $0), b)) })]
        case "Pow":
            // d(a^b) = b a^(b-1) da + y ln(a) db
            var e = b
            if let bs = r.inputs[1], let as_ = r.inputs[0], bs.dtype != as_.dtype {
                e = r.emit("Cast", [b], [Attribute("to", .int(Int(as_.dtype.rawValue)))])
            }
            let first = da.map { r.mul($0, r.mul(e, r.emit("Pow", [a, r.sub(e, r.scalar(1))]))) }
            let second = db.map { r.mul(r.mul(y, r.emit("Log", [a])), $0) }
            return [r.add(first, second)]  // both have the output's shape (y and b broadcast them)
        default:
            throw r.error("op \(r.node.opType) has no forward-mode (JVP) rule")
        }
    }
}

extension CompareOp: ForwardDifferentiable {
    /// Comparisons output bool: no tangent.
    static func jvp(_ r: JVPRule) throws -> [String?] { [nil] }
}

extension WhereOp: ForwardDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let dx = r.tangent(1), dy = r.tangent(2)
        guard dx != nil || dy != nil else { return [nil] }
        let t = r.emit("Where", [r.input(0), dx ?? r.scalar(0), dy ?? r.scalar(0)])
        // Where broadcasts its three inputs; a zero scalar stands for the absent tangent, so the
        // result can be smaller than the output.
        let shapes = [r.inputs[0]?.shape ?? [], dx == nil ? [] : r.inputs[1]?.shape ?? [], dy == nil ? [] : r.inputs[2]?.shape ?? []]
        let got = shapes.dropFirst().reduce(shapes[0]) { Shapes.broadcast($0, $1) ?? $0 }
        return [got == r.outputs[0].shape ? t : r.emit("Expand", [t, r.emit("Shape", [r.output(0)])])]
    }
}

extension ClipOp: ForwardDifferentiable {
    /// The tangent where x lies within the bounds (a tie passes it), zero outside.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard var d = r.tangent(0) else { return [nil] }
        let x = r.input(0), zero = r.scalar(0)
        if r.has(1) { d = r.emit("Where", [r.emit("Less", [x, r.input(1)]), zero, d]) }
        if r.has(2) { d = r.emit("Where", [r.emit("Greater", [x, r.input(2)]), zero, d]) }
        return [d]
    }
}

// MARK: - Reverse-mode rules

extension BinaryOp: ReverseDifferentiable {
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil] }
        let a = r.input(0), b = r.input(1), y = r.output(0)
        func onA(_ v: @autoclosure () -> String) -> String? { r.needs(0) ? r.unbroadcast(v(), toInput: 0) : nil }
        func onB(_ v: @autoclosure () -> String) -> String? { r.needs(1) ? r.unbroadcast(v(), toInput: 1) : nil }
        switch r.node.opType {
        case "Add": return [onA(g), onB(g)]
        case "Sub": return [onA(g), onB(r.neg(g))]
        case "Mod":
            guard !r.needs(1) else { throw r.error("Mod has no reverse-mode (VJP) rule for its divisor") }
            return [onA(g), nil]
        case "Mul": return [onA(r.mul(g, b)), onB(r.mul(g, a))]
        case "Div": return [onA(r.div(g, b)), onB(r.neg(r.div(r.mul(g, y), b)))]
        case "Pow":
            var e = b
            if let bs = r.inputs[1], let as_ = r.inputs[0], bs.dtype != as_.dtype {
                e = r.emit("Cast", [b], [Attribute("to", .int(Int(as_.dtype.rawValue)))])
            }
            let isFloatExponent = r.inputs[1].map { $0.dtype == .float || $0.dtype == .float64 } ?? false
            return [onA(r.mul(g, r.mul(e, r.emit("Pow", [a, r.sub(e, r.scalar(1))])))),
                    isFloatExponent ? onB(r.mul(g, r.mul(y, r.emit("Log", [a])))) : nil]
        default:
            throw r.error("op \(r.node.opType) has no reverse-mode (VJP) rule")
        }
    }
}

extension CompareOp: ReverseDifferentiable {
    /// Comparisons output bool: no cotangent flows back.
    static func vjp(_ r: VJPRule) throws -> [String?] { [nil, nil] }
}

extension WhereOp: ReverseDifferentiable {
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return [nil, nil, nil] }
        let c = r.input(0), zero = r.scalar(0)
        // g has the output's shape, so each selection does too; then unbroadcast to the input.
        return [nil,
                r.needs(1) ? r.unbroadcast(r.emit("Where", [c, g, zero]), toInput: 1) : nil,
                r.needs(2) ? r.unbroadcast(r.emit("Where", [c, zero, g]), toInput: 2) : nil]
    }
}

extension ClipOp: ReverseDifferentiable {
    /// The cotangent where x lies within the bounds, zero outside (the bounds are constants).
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard var g = r.cotangent(), r.needs(0) else { return [nil] }
        let x = r.input(0), zero = r.scalar(0)
        if r.has(1) { g = r.emit("Where", [r.emit("Less", [x, r.input(1)]), zero, g]) }
        if r.has(2) { g = r.emit("Where", [r.emit("Greater", [x, r.input(2)]), zero, g]) }
        return [g]
    }
}
