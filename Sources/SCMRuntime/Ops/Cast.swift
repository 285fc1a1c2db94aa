import SCMGraph

/// Cast between float32/64, the fixed-width integers and bool. Float to integer truncates toward
/// zero and saturates; integer to integer wraps (as C casts); anything to bool is `!= 0`.
enum CastOp: Operator {
    static let opTypes = ["Cast"]
    static let dtypes = arithmeticDTypes.union([.bool])

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        guard let code = try ctx.optionalInt("to") else { throw ctx.error("attribute 'to' is required") }
        guard let to = DType(rawValue: Int32(truncatingIfNeeded: code)) else { throw ctx.error("'to' = \(code) is not a dtype") }
        try ctx.require(x, in: dtypes)
        try ctx.require(TensorSpec(to, []), in: dtypes, "target")
        let out = TensorSpec(to, x.shape)
        if to == x.dtype || (x.elementBytes == out.elementBytes && x.dtype != .bool && to != .bool && x.dtype.isInteger && to.isInteger) {
            return OpBuild(outputs: [out], kernel: CopyKernel(bytes: out.byteCount))
        }
        return OpBuild(outputs: [out], kernel: CastKernel(from: x.dtype, to: to, count: x.count))
    }
}

extension DType {
    var isInteger: Bool { [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64].contains(self) }
}

/// Copies input 0 to output 0.
struct CopyKernel: Kernel {
    let bytes: Int
    func run(_ io: KernelIO) {
        if bytes > 0 { io.rawOutput(0).copyMemory(from: io.rawInput(0), byteCount: bytes) }
    }
}

struct CastKernel: Kernel {
    let from: DType
    let to: DType
    let count: Int

    func run(_ io: KernelIO) {
        if from == .bool {
            let x = io.input(0, UInt8.self)
            withArithType(to) { t in fromBool(t, x, io) }
        } else {
            withArithType(from) { s in cast(s, io) }
        }
    }

    func fromBool<D: ArithScalar>(_: D.Type, _ x: UnsafePointer<UInt8>, _ io: KernelIO) {
        let y = io.output(0, D.self)
        for i in 0..<count { y[i] = D(fromDouble: x[i] != 0 ? 1 : 0) }
    }

    func cast<S: ArithScalar>(_: S.Type, _ io: KernelIO) {
        let x = io.input(0, S.self)
        if to == .bool {
            let y = io.output(0, UInt8.self)
            for i in 0..<count { y[i] = x[i].asDouble != 0 ? 1 : 0 }
            return
        }
        withArithType(to) { d in castTo(S.self, d, x, io) }
    }

    func castTo<S: ArithScalar, D: ArithScalar>(_: S.Type, _: D.Type, _ x: UnsafePointer<S>, _ io: KernelIO) {
        let y = io.output(0, D.self)
        switch (x, y) {
        case let (xf as UnsafePointer<Double>, yf as UnsafeMutablePointer<Float>):
            for i in 0..<count { yf[i] = Float(xf[i]) }
        default:
            if from.isInteger && to.isInteger {
                withInteger(S.self, D.self, x, y)
            } else if from.isInteger && to == .float {
                for i in 0..<count { y[i] = D(fromDouble: Double(Float(x[i].asDouble))) }
            } else {
                for i in 0..<count { y[i] = D(fromDouble: x[i].asDouble) }
            }
        }
    }

    func withInteger<S, D>(_: S.Type, _: D.Type, _ x: UnsafePointer<S>, _ y: UnsafeMutablePointer<D>) {
        guard let xs = x as? any IntegerPointer else { return }
        xs.convert(into: UnsafeMutableRawPointer(y), as: D.self, count: count)
    }
}

/// Integer-to-integer conversion with wrapping (two's complement truncation or extension).
protocol IntegerPointer {
    func convert<D>(into y: UnsafeMutableRawPointer, as: D.Type, count: Int)
}
extension UnsafePointer: IntegerPointer where Pointee: FixedWidthInteger {
    func convert<D>(into y: UnsafeMutableRawPointer, as: D.Type, count: Int) {
        func go<T: FixedWidthInteger>(_: T.Type) {
            let o = y.assumingMemoryBound(to: T.self)
            for i in 0..<count { o[i] = T(truncatingIfNeeded: self[i]) }
        }
        switch D.self {
        case is Int8.Type: go(Int8.self)
        case is Int16.Type: go(Int16.self)
        case is Int32.Type: go(Int32.self)
        case is Int64.Type: go(Int64.self)
        case is UInt8.Type: go(UInt8.self)
        case is UInt16.Type: go(UInt16.self)
        case is UInt32.Type: go(UInt32.self)
        default: go(UInt64.self)
        }
    }
}

// MARK: - Forward-mode rules

extension CastOp: ForwardDifferentiable {
    /// Between float types the tangent is cast alike; to any other type there is none.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0), r.outputs[0].dtype == .float || r.outputs[0].dtype == .float64 else { return [nil] }
        return [r.emit("Cast", [d], r.node.attributes)]
    }
}

// MARK: - Reverse-mode rules

extension CastOp: ReverseDifferentiable {
    /// Between float types the cotangent is cast back to the input's type.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0), let xs = r.inputs[0], xs.dtype == .float || xs.dtype == .float64 else { return [nil] }
        return [r.emit("Cast", [g], [Attribute("to", .int(Int(xs.dtype.rawValue)))])]
    }
}
