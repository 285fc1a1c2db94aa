import SCMGraph

/// Reshape(data, shape) with 0 (copy the input dim, unless allowzero) and -1 (inferred). A view.
enum ReshapeOp: Operator {
    static let opTypes = ["Reshape"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0)
        let spec = try ctx.intValues(1, "shape")
        let allowZero = try ctx.int("allowzero", 0) != 0
        var out: [Int] = []
        var infer: Int? = nil
        for (i, d) in spec.enumerated() {
            if d == -1 {
                guard infer == nil else { throw ctx.error("shape \(spec) has more than one -1") }
                infer = i
                out.append(1)
            } else if d == 0 && !allowZero {
                guard i < x.rank else { throw ctx.error("shape \(spec): 0 at \(i) copies a dim the input \(x.shape) lacks") }
                out.append(x.shape[i])
            } else if d < 0 {
                throw ctx.error("shape \(spec) has a negative dim")
            } else {
                out.append(d)
            }
        }
        _ = try ctx.checked(out, "shape")
        if let i = infer {
            let rest = out.reduce(1, *)
            guard rest > 0, x.count % rest == 0 else { throw ctx.error("cannot reshape \(x.shape) to \(spec)") }
            out[i] = x.count / rest
        }
        guard ShapeMath.elementCount(out) == x.count else { throw ctx.error("cannot reshape \(x.shape) (\(x.count) elements) to \(spec)") }
        return .view(TensorSpec(x.dtype, out))
    }
}

/// Flatten(input) at axis: [prod(dims before), prod(dims from axis)]. A view.
enum FlattenOp: Operator {
    static let opTypes = ["Flatten"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        var axis = try ctx.int("axis", 1)
        if axis < 0 { axis += x.rank }
        guard (0...x.rank).contains(axis) else { throw ctx.error("axis out of range for rank \(x.rank)") }
        let a = x.shape[..<axis].reduce(1, *)
        return .view(TensorSpec(x.dtype, [a, x.shape[axis...].reduce(1, *)]))
    }
}

/// Squeeze(data, axes?): removes the listed size-1 dims, or all of them. A view.
enum SqueezeOp: Operator {
    static let opTypes = ["Squeeze"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 2)
        let x = try ctx.input(0)
        let axes: [Int]? = ctx.has(1) ? try ctx.intValues(1, "axes") : nil
        var drop = Set<Int>()
        if let axes {
            for a in axes {
                let v = try ctx.axis(a, rank: x.rank)
                guard x.shape[v] == 1 else { throw ctx.error("cannot squeeze dim \(a) of size \(x.shape[v])") }
                drop.insert(v)
            }
        } else {
            drop = Set(x.shape.indices.filter { x.shape[$0] == 1 })
        }
        return .view(TensorSpec(x.dtype, x.shape.indices.filter { !drop.contains($0) }.map { x.shape[$0] }))
    }
}

/// Unsqueeze(data, axes): inserts size-1 dims at the listed output positions. A view.
enum UnsqueezeOp: Operator {
    static let opTypes = ["Unsqueeze"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0)
        let axes = try ctx.intValues(1, "axes")
        let r = x.rank + axes.count
        var ins = Set<Int>()
        for a in axes {
            guard ins.insert(try ctx.axis(a, rank: r)).inserted else { throw ctx.error("axes \(axes) repeat") }
        }
        var out: [Int] = []
        var it = x.shape.makeIterator()
        for i in 0..<r { out.append(ins.contains(i) ? 1 : it.next()!) }
        return .view(TensorSpec(x.dtype, out))
    }
}

/// Identity: a view.
enum IdentityOp: Operator {
    static let opTypes = ["Identity"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        return .view(try ctx.input(0))
    }
}

/// Moves bytes of `width`-byte elements: the kernels of the data-movement ops are dtype-agnostic.
@inline(__always) func withWidth(_ width: Int, _ body: (any FixedWidthInteger.Type) -> Void) {
    switch width {
    case 1: body(UInt8.self)
    case 2: body(UInt16.self)
    case 4: body(UInt32.self)
    default: body(UInt64.self)
    }
}

/// Transpose(data) with perm (default: reversed dims).
enum TransposeOp: Operator {
    static let opTypes = ["Transpose"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        let perm = try ctx.ints("perm") ?? Array((0..<x.rank).reversed())
        guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else { throw ctx.error("perm \(perm) is not a permutation of \(x.rank) dims") }
        let out = perm.map { x.shape[$0] }
        let st = Shapes.strides(x.shape)
        return OpBuild(outputs: [TensorSpec(x.dtype, out)],
                       kernel: StridedCopyKernel(width: x.elementBytes, shape: out, strides: perm.map { st[$0] }, base: 0))
    }
}

/// out (contiguous, `shape`) = in[base + sum(i_d * strides[d])]: Transpose, Slice, Expand.
struct StridedCopyKernel: Kernel {
    let width: Int
    let shape: [Int]
    let strides: [Int]
    let base: Int

    func run(_ io: KernelIO) {
        withWidth(width) { go($0, io) }
    }

    func go<T>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self) + base, y = io.output(0, T.self)
        let r = shape.count
        guard r > 0 else { y[0] = x[0]; return }
        let inner = shape[r - 1], innerStride = strides[r - 1]
        stridedRows(shape: shape, strides: strides, pool: io.pool) { row, off in
            let src = x + off, dst = y + row * inner
            if innerStride == 1 {
                dst.update(from: src, count: inner)
            } else {
                for i in 0..<inner { dst[i] = src[i * innerStride] }
            }
        }
    }
}

/// Calls `body(row, offset)` for every row (all but the last axis) of a strided view of `shape`
/// (rank >= 1), offset being the element offset of the row's first element in the strided
/// tensor; rows in chunks of about 16384 elements over the pool.
@inline(__always) func stridedRows(shape: [Int], strides: [Int], pool: ThreadPool, _ body: (Int, Int) -> Void) {
    let r = shape.count, inner = shape[r - 1]
    let rows = shape.dropLast().reduce(1, *)
    guard inner > 0, rows > 0 else { return }
    let rpc = max(1, 16384 / inner)
    pool.parallelFor((rows + rpc - 1) / rpc) { ch, _ in
        for row in (ch * rpc)..<min(rows, (ch + 1) * rpc) {
            var rem = row, off = 0
            var d = r - 2
            while d >= 0 {
                off += (rem % shape[d]) * strides[d]
                rem /= shape[d]
                d -= 1
            }
            body(row, off)
        }
    }
}

/// Concat(inputs...) along axis.
enum ConcatOp: Operator {
    static let opTypes = ["Concat"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1 << 16)
        let first = try ctx.input(0)
        guard let a = try ctx.optionalInt("axis") else { throw ctx.error("attribute 'axis' is required") }
        guard first.rank >= 1 else { throw ctx.error("inputs must have rank >= 1, input 0 is \(first)") }
        let axis = try ctx.axis(a, rank: first.rank)
        var out = first.shape
        out[axis] = 0
        var sizes: [Int] = []
        for i in 0..<ctx.inputCount {
            let t = try ctx.input(i)
            guard t.dtype == first.dtype, t.rank == first.rank,
                  (0..<t.rank).allSatisfy({ $0 == axis || t.shape[$0] == first.shape[$0] }) else {
                throw ctx.error("input \(i) \(t) does not match input 0 \(first) outside axis \(axis)")
            }
            out[axis] += t.shape[axis]
            sizes.append(t.shape[axis...].reduce(1, *))
        }
        let outer = first.shape[..<axis].reduce(1, *)
        return OpBuild(outputs: [TensorSpec(first.dtype, out)], kernel: AxisPartsKernel(width: first.elementBytes, outer: outer, sizes: sizes, gather: true))
    }
}

/// Copies between one tensor and its parts along an axis: Concat gathers the parts (inputs) into
/// the whole (output 0), Split scatters the whole (input 0) into the parts (outputs).
struct AxisPartsKernel: Kernel {
    let width, outer: Int
    /// Elements of each part per outer index.
    let sizes: [Int]
    /// true: parts -> whole (Concat); false: whole -> parts (Split).
    let gather: Bool
    func run(_ io: KernelIO) {
        let elements = sizes.reduce(0, +), total = elements * width, sizes = sizes, width = width, gather = gather
        // One outer index (every part's slice of it) per loop index: pure copies, so the split over
        // the threads does not matter.
        io.pool.parallelFor(outer, elements: outer * elements) { o, _ in
            var off = 0
            for (i, s) in sizes.enumerated() {
                let bytes = s * width
                if bytes > 0 {
                    if gather {
                        (io.rawOutput(0) + o * total + off).copyMemory(from: io.rawInput(i) + o * bytes, byteCount: bytes)
                    } else {
                        (io.rawOutput(i) + o * bytes).copyMemory(from: io.rawInput(0) + o * total + off, byteCount: bytes)
                    }
                }
                off += bytes
            }
        }
    }
}

/// Split(input, split?) along axis into equal parts, `split` sizes, or num_outputs (opset 18).
enum SplitOp: Operator {
    static let opTypes = ["Split"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 2, outputs: 1...(1 << 16))
        let x = try ctx.input(0)
        guard x.rank >= 1 else { throw ctx.error("input must have rank >= 1, is \(x)") }
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let n = ctx.node.outputs.count, len = x.shape[axis]
        var parts: [Int]
        if ctx.has(1) {
            parts = try ctx.intValues(1, "split")
        } else if let s = try ctx.ints("split") {
            parts = s
        } else {
            let chunk = (len + n - 1) / n
            parts = (0..<n).map { max(0, min(chunk, len - $0 * chunk)) }
        }
        guard parts.count == n, parts.allSatisfy({ $0 >= 0 }), parts.reduce(0, +) == len else {
            throw ctx.error("split \(parts) does not divide dim \(len) into \(n) outputs")
        }
        let outer = x.shape[..<axis].reduce(1, *), innerSize = x.shape[(axis + 1)...].reduce(1, *)
        let outs = parts.map { p -> TensorSpec in
            var s = x.shape
            s[axis] = p
            return TensorSpec(x.dtype, s)
        }
        return OpBuild(outputs: outs, kernel: AxisPartsKernel(width: x.elementBytes, outer: outer, sizes: parts.map { $0 * innerSize }, gather: false))
    }
}

/// Slice(data, starts, ends, axes?, steps?) with negative indices, clamping and negative steps.
enum SliceOp: Operator {
    static let opTypes = ["Slice"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 3, 5)
        let x = try ctx.input(0)
        let (out, strides, base) = try geometry(ctx, shape: x.shape, from: 1)
        return OpBuild(outputs: [TensorSpec(x.dtype, out)],
                       kernel: StridedCopyKernel(width: x.elementBytes, shape: out, strides: strides, base: base))
    }

    /// The slice of a tensor of `shape` that inputs `from` (starts), `from + 1` (ends), and the
    /// optional `from + 2` (axes), `from + 3` (steps) select: its shape, and the element strides
    /// and offset of its elements within the tensor (output element i is input element
    /// base + sum_d i_d strides[d]; no input element is selected twice).
    static func geometry(_ ctx: OpContext, shape: [Int], from i0: Int) throws -> (shape: [Int], strides: [Int], base: Int) {
        let rank = shape.count
        let starts = try ctx.intValues(i0, "starts"), ends = try ctx.intValues(i0 + 1, "ends")
        let axes = ctx.has(i0 + 2) ? try ctx.intValues(i0 + 2, "axes") : Array(0..<starts.count)
        let steps = ctx.has(i0 + 3) ? try ctx.intValues(i0 + 3, "steps") : Array(repeating: 1, count: starts.count)
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw ctx.error("starts, ends, axes and steps must have the same length")
        }
        var begin = [Int](repeating: 0, count: rank), step = [Int](repeating: 1, count: rank), out = shape
        var seen = Set<Int>()
        guard rank >= 1 || starts.isEmpty else { throw ctx.error("cannot slice a tensor of rank 0") }
        for i in 0..<starts.count {
            let a = try ctx.axis(axes[i], rank: rank)
            guard seen.insert(a).inserted else { throw ctx.error("axis \(axes[i]) repeats") }
            let n = shape[a], s = steps[i]
            guard s != 0, s != Int.min else { throw ctx.error("step \(s) on axis \(a) is not valid") }
            func norm(_ v: Int) -> Int { v < 0 ? v + n : v }
            var b = norm(starts[i]), e = norm(ends[i])
            if s > 0 {
                b = min(max(b, 0), n)
                e = min(max(e, 0), n)
                out[a] = e > b ? (e - b - 1) / s + 1 : 0
            } else {
                b = min(max(b, -1), n - 1)
                e = min(max(e, -1), n - 1)
                out[a] = b > e ? (b - e - 1) / (-s) + 1 : 0
            }
            begin[a] = b
            step[a] = s
        }
        let st = Shapes.strides(shape)
        let base = out.contains(0) ? 0 : (0..<rank).reduce(0) { $0 + begin[$1] * st[$1] }
        return (out, (0..<rank).map { st[$0] * step[$0] }, base)
    }
}

/// `ai.scm:SliceGrad(dY, shape, starts, ends, axes?, steps?)`: the adjoint of Slice for
/// reverse-mode differentiation. `shape` (int64, known at compile time) is X's shape; starts,
/// ends, axes and steps mean what they mean to Slice, and dY must have the shape Slice gives X.
/// Output dX of `shape`: dY's elements at the positions Slice took them from, zeros elsewhere
/// (Slice selects each position at most once, so nothing is summed and the result does not
/// depend on the thread count).
enum SliceGradOp: Operator {
    static let opTypes = ["ai.scm:SliceGrad"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 4, 6)
        let dy = try ctx.input(0)
        try ctx.require(dy, in: [.float, .float64], "dY")
        let shape = try ctx.intValues(1, "shape")
        guard shape.count == dy.rank else {
            throw ctx.error("shape \(shape) has \(shape.count) dims, dY \(dy.shape) has \(dy.rank)")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ctx.error("shape \(shape) must not be negative") }
        _ = try ctx.checked(shape, "shape")
        let (out, strides, base) = try SliceOp.geometry(ctx, shape: shape, from: 2)
        guard out == dy.shape else {
            throw ctx.error("dY \(dy.shape) differs from Slice's output \(out) for X \(shape) with these starts, ends, axes and steps")
        }
        return OpBuild(outputs: [TensorSpec(dy.dtype, shape)],
                       kernel: StridedScatterKernel(width: dy.elementBytes, shape: out, strides: strides, base: base,
                                                    total: shape.reduce(1, *)))
    }
}

/// The adjoint of `StridedCopyKernel` for selections that take each position at most once:
/// out (`total` elements) = 0, then out[base + sum(i_d * strides[d])] = in (contiguous, `shape`).
struct StridedScatterKernel: Kernel {
    let width: Int
    let shape: [Int]
    let strides: [Int]
    let base: Int
    let total: Int

    func run(_ io: KernelIO) {
        withWidth(width) { go($0, io) }
    }

    func go<T>(_: T.Type, _ io: KernelIO) {
        let x = io.input(0, T.self), y = io.output(0, T.self)
        let bytes = total * width
        let zc = max(1, 1 << 16)
        io.pool.parallelFor((bytes + zc - 1) / zc) { ch, _ in
            let lo = ch * zc, hi = min(bytes, lo + zc)
            (UnsafeMutableRawPointer(y) + lo).initializeMemory(as: UInt8.self, repeating: 0, count: hi - lo)
        }
        let r = shape.count
        guard r > 0 else {
            if total > 0 { (y + base).pointee = x[0] }
            return
        }
        let inner = shape[r - 1], innerStride = strides[r - 1]
        let dst0 = y + base
        stridedRows(shape: shape, strides: strides, pool: io.pool) { row, off in
            let src = x + row * inner, dst = dst0 + off
            if innerStride == 1 {
                dst.update(from: src, count: inner)
            } else {
                for i in 0..<inner { dst[i * innerStride] = src[i] }
            }
        }
    }
}

/// Expand(input, shape): broadcast to broadcast(input.shape, shape).
enum ExpandOp: Operator {
    static let opTypes = ["Expand"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0)
        let target = try ctx.intValues(1, "shape")
        guard target.allSatisfy({ $0 >= 0 }), let out = Shapes.broadcast(x.shape, try ctx.checked(target, "shape")) else {
            throw ctx.error("\(x.shape) does not broadcast with \(target)")
        }
        _ = try ctx.checked(out)
        return OpBuild(outputs: [TensorSpec(x.dtype, out)],
                       kernel: StridedCopyKernel(width: x.elementBytes, shape: out,
                                                 strides: Shapes.broadcastStrides(from: x.shape, to: out), base: 0))
    }
}

/// Gather(data, indices) along axis; negative indices count from the end. Indices out of range
/// are rejected at compile time when constant; at run time they produce zeros.
enum GatherOp: Operator {
    static let opTypes = ["Gather"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 2, 2)
        let x = try ctx.input(0), idx = try ctx.input(1)
        try ctx.require(idx, in: [.int32, .int64], "indices")
        guard x.rank >= 1 else { throw ctx.error("data must have rank >= 1") }
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        if ctx.values[1] != nil {
            let vals = try ctx.intValues(1, "indices")
            if let bad = vals.first(where: { $0 < -x.shape[axis] || $0 >= x.shape[axis] }) {
                throw ctx.error("index \(bad) is out of range for dim \(x.shape[axis])")
            }
        }
        let out = Array(x.shape[..<axis]) + idx.shape + Array(x.shape[(axis + 1)...])
        return OpBuild(outputs: [TensorSpec(x.dtype, out)],
                       kernel: GatherKernel(width: x.elementBytes, outer: x.shape[..<axis].reduce(1, *), len: x.shape[axis],
                                            inner: x.shape[(axis + 1)...].reduce(1, *), count: idx.count, idx64: idx.dtype == .int64))
    }
}

struct GatherKernel: Kernel {
    let width, outer, len, inner, count: Int
    let idx64: Bool
    func run(_ io: KernelIO) {
        let x = io.rawInput(0), y = io.rawOutput(0)
        let row = inner * width
        for o in 0..<outer {
            for j in 0..<count {
                var i = idx64 ? Int(io.input(1, Int64.self)[j]) : Int(io.input(1, Int32.self)[j])
                if i < 0 { i += len }
                let dst = y + (o * count + j) * row
                if i >= 0 && i < len {
                    dst.copyMemory(from: x + (o * len + i) * row, byteCount: row)
                } else {
                    dst.initializeMemory(as: UInt8.self, repeating: 0, count: row)
                }
            }
        }
    }
}

/// Shape(data) with start/end: a compile-time constant.
enum ShapeOp: Operator {
    static let opTypes = ["Shape"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let x = try ctx.input(0)
        let r = x.rank
        func clampAxis(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
        let s = clampAxis(try ctx.int("start", 0)), e = clampAxis(try ctx.int("end", r))
        let dims = s < e ? x.shape[s..<e].map { Int64($0) } : []
        return .constant([try Tensor(shape: [dims.count], scalars: dims)])
    }
}

/// Constant: value, value_float(s), value_int(s).
enum ConstantOp: Operator {
    static let opTypes = ["Constant"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 0, 0)
        guard ctx.node.attributes.count == 1, let a = ctx.node.attributes.first else {
            throw ctx.error("needs exactly one value attribute")
        }
        let t: Tensor
        switch (a.name, a.value) {
        case ("value", .tensor(let v)): t = v
        case ("value_float", .float(let f)): t = try Tensor(shape: [], scalars: [f])
        case ("value_floats", .floats(let f)): t = try Tensor(shape: [f.count], scalars: f)
        case ("value_int", .int(let i)): t = try Tensor(shape: [], scalars: [Int64(i)])
        case ("value_ints", .ints(let i)): t = try Tensor(shape: [i.count], scalars: i.map { Int64($0) })
        default: throw ctx.unsupported("attribute '\(a.name)' (\(a.value.typeName)) is not a supported constant")
        }
        guard t.dtype.isByteAligned, t.storage != nil else { throw ctx.unsupported("constant dtype \(t.dtype) is not supported") }
        return .constant([t])
    }
}

/// ConstantOfShape(shape) filled with `value` (default float 0).
enum ConstantOfShapeOp: Operator {
    static let opTypes = ["ConstantOfShape"]

    static func build(_ ctx: OpContext) throws -> OpBuild {
        try ctx.arity(inputs: 1, 1)
        let dims = try ctx.intValues(0, "shape")
        guard dims.allSatisfy({ $0 >= 0 }), let n = ShapeMath.elementCount(dims) else { throw ctx.error("shape \(dims) is invalid") }
        var fill = try Tensor(shape: [1], scalars: [Float(0)])
        if let a = ctx.attribute("value") {
            guard case .tensor(let t) = a.value, t.elementCount == 1, t.dtype.isByteAligned, t.storage != nil else {
                throw ctx.error("value must be a one-element numeric tensor")
            }
            fill = t
        }
        let w = (fill.dtype.bitWidth ?? 8) / 8
        guard let bytes = fill.dtype.byteCount(elements: n), bytes <= 1 << 32 else { throw ctx.error("shape \(dims) is too large") }
        _ = try ctx.checked(dims)  // the element limit, before the value is allocated
        let src = fill.storage!.bytes
        let storage = TensorStorage(byteCount: bytes) { dst in
            for i in 0..<n { (dst.baseAddress! + i * w).copyMemory(from: src.baseAddress!, byteCount: w) }
        }
        return .constant([try Tensor(dtype: fill.dtype, shape: dims, data: .bytes(storage))])
    }
}

// MARK: - Forward-mode rules

/// Ops linear in their data input (input 0), the others being shapes, axes or indices: the
/// tangent is the same op applied to the data's tangent.
protocol LinearInData: ForwardDifferentiable {}

extension LinearInData {
    static func jvp(_ r: JVPRule) throws -> [String?] {
        guard let d = r.tangent(0) else { return r.node.outputs.map { _ in nil } }
        return r.sameOp([0: d]).map { Optional($0) }
    }
}

extension ReshapeOp: LinearInData {}
extension FlattenOp: LinearInData {}
extension SqueezeOp: LinearInData {}
extension UnsqueezeOp: LinearInData {}
extension IdentityOp: LinearInData {}
extension TransposeOp: LinearInData {}
extension SplitOp: LinearInData {}
extension SliceOp: LinearInData {}
extension ExpandOp: LinearInData {}
extension GatherOp: LinearInData {}

extension ConcatOp: ForwardDifferentiable {
    /// Concat of the tangents, zeros standing for inputs without one.
    static func jvp(_ r: JVPRule) throws -> [String?] {
        let parts = r.node.inputs.indices.map { r.tangent($0) ?? r.zeros(like: r.input($0)) }
        return [r.emit("Concat", parts, r.node.attributes)]
    }
}

/// Shape, Constant and ConstantOfShape: integer or constant outputs, no tangent.
extension ShapeOp: ForwardDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] { [nil] }
}
extension ConstantOp: ForwardDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] { [nil] }
}
extension ConstantOfShapeOp: ForwardDifferentiable {
    static func jvp(_ r: JVPRule) throws -> [String?] { [nil] }
}

// MARK: - Reverse-mode rules

extension RuleEmitter {
    /// The node's constant int input `i` (axes, split sizes), or nil when absent.
    func constantInts(_ i: Int) -> [Int]? {
        guard i < values.count, let t = values[i] else { return nil }
        if let v = t.scalars(as: Int64.self) { return v.map { Int($0) } }
        if let v = t.scalars(as: Int32.self) { return v.map { Int($0) } }
        return nil
    }
}

extension VJPRule {

    /// The number of elements of `x` over `axes` (of a rank-`rank` value), shaped to broadcast
    /// (size-1 dims elsewhere): a sum of ones over x's runtime shape, which the compiler folds to
    /// a constant when the shape is static.
    func count(of x: String, axes: [Int]) -> String {
        let one: Tensor = floatType == .float64 ? try! Tensor(shape: [1], scalars: [Double(1)]) : try! Tensor(shape: [1], scalars: [Float(1)])
        return reduce("ReduceSum", emit("ConstantOfShape", [shape(x)], [Attribute("value", .tensor(one))]), axes: axes)
    }
}

/// Views whose input and output hold the same elements in the same order: the cotangent is the
/// output's, reshaped to the input's runtime shape.
protocol ReshapingView: ReverseDifferentiable {}

extension ReshapingView {
    static func vjp(_ r: VJPRule) throws -> [String?] {
        var out: [String?] = r.node.inputs.map { _ in nil }
        if let g = r.cotangent(), r.needs(0) { out[0] = r.reshape(g, like: r.input(0)) }
        return out
    }
}

extension ReshapeOp: ReshapingView {}
extension FlattenOp: ReshapingView {}
extension SqueezeOp: ReshapingView {}
extension UnsqueezeOp: ReshapingView {}
extension IdentityOp: ReshapingView {}

extension TransposeOp: ReverseDifferentiable {
    /// The transpose by the inverse permutation.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil] }
        let rank = r.outputs[0].rank
        let perm = try r.intsAttribute("perm") ?? Array((0..<rank).reversed())
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return [r.emit("Transpose", [g], [Attribute("perm", .ints(inverse))])]
    }
}

extension ExpandOp: ReverseDifferentiable {
    /// Summed over the broadcast axes.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent(), r.needs(0) else { return [nil, nil] }
        return [r.unbroadcast(g, toInput: 0), nil]
    }
}

extension ConcatOp: ReverseDifferentiable {
    /// The cotangent split back into the inputs' extents along the axis.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard let g = r.cotangent() else { return r.node.inputs.map { _ in nil } }
        let rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", 0)
        if axis < 0 { axis += rank }
        let sizes = r.inputs.map { $0?.shape[axis] ?? 0 }
        guard r.node.inputs.count > 1 else { return [g] }
        let parts = r.emit("Split", [g, r.ints(sizes)], [Attribute("axis", .int(axis))], outputs: sizes.count)
        return parts.enumerated().map { i, p in r.needs(i) ? p : nil }
    }
}

extension SliceOp: ReverseDifferentiable {
    /// dY placed back where Slice took it from, zeros elsewhere (`ai.scm:SliceGrad`).
    static func vjp(_ r: VJPRule) throws -> [String?] {
        var out: [String?] = r.node.inputs.map { _ in nil }
        guard let g = r.cotangent(), r.needs(0) else { return out }
        let rest = r.node.inputs.dropFirst().map { $0 }
        out[0] = r.emit("SliceGrad", [g, r.shape(r.input(0))] + rest, domain: Model.scmDomain)
        return out
    }
}

extension SplitOp: ReverseDifferentiable {
    /// The parts' cotangents concatenated back, zeros standing for parts without one.
    static func vjp(_ r: VJPRule) throws -> [String?] {
        guard r.needs(0), r.cotangents.contains(where: { $0 != nil }) else { return r.node.inputs.map { _ in nil } }
        let rank = r.outputs[0].rank
        var axis = try r.intAttribute("axis", 0)
        if axis < 0 { axis += rank }
        let parts = r.node.outputs.indices.map { r.cotangent($0) ?? r.zeros(like: r.output($0)) }
        var out: [String?] = r.node.inputs.map { _ in nil }
        out[0] = r.emit("Concat", parts, [Attribute("axis", .int(axis))])
        return out
    }
}

/// Shape, Constant and ConstantOfShape: nothing flows back.
extension ShapeOp: ReverseDifferentiable {
    static func vjp(_ r: VJPRule) throws -> [String?] { [nil] }
}
extension ConstantOp: ReverseDifferentiable {
    static func vjp(_ r: VJPRule) throws -> [String?] { [] }
}
extension ConstantOfShapeOp: ReverseDifferentiable {
    static func vjp(_ r: VJPRule) throws -> [String?] { [nil] }
}
