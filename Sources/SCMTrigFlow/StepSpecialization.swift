import SCMGraph
import SCMOptimize
import SCMRuntime

/// The TrigFlow contract's per-step specialization (inputs `x` [N, ...] and `t` [N], in that
/// order): the optimizer's passes are generic, this is where the contract tells them what to bind.
extension Optimizer {
    /// The specialization of a TrigFlow model for batch size `batch` and, when `t` is given, for
    /// that time: `t` becomes a constant [batch] tensor and the batch dimension becomes concrete.
    /// Returns the pass and the context (concrete input types) later passes analyse with.
    public static func stepSpecialization(_ model: Model, t: Float?, batch: Int) throws -> (Specialize, PassContext) {
        let g = model.graph
        guard g.inputs.count >= 2 else {
            throw OptimizeError("a TrigFlow model has inputs x and t; this one has \(g.inputs.count) input(s)")
        }
        if let m = Limits.violation(batch, Limits.batch) { throw OptimizeError("the batch size \(m)") }
        let x = g.inputs[0], tIn = g.inputs[1]
        guard let xs = x.type?.shape, xs.count >= 1, x.type?.elementType == .float else {
            throw OptimizeError("input '\(x.name)' must be float [N, ...] with a declared shape")
        }
        var dims: [String: Int] = [:]
        switch xs[0] {
        case .param(let p): dims[p] = batch
        case .value(let v): guard v == batch else { throw OptimizeError("input '\(x.name)' has a fixed batch of \(v), asked for \(batch)") }
        case .unknown: break
        }
        guard let rest = Array(xs.dropFirst()).concrete else {
            throw OptimizeError("input '\(x.name)' has shape \(xs.shapeDescription): only the batch dimension may be symbolic")
        }
        let ts = tIn.type?.shape
        guard tIn.type?.elementType == .float, ts == nil || ts!.count == 1 else {
            throw OptimizeError("input '\(tIn.name)' must be float [N]")
        }
        // t is [N] by the contract; a file that fixes its length (e.g. [1], broadcast) keeps it.
        let tShape = ts?.concrete ?? [batch]
        var context = PassContext(shapes: [x.name: TensorSpec(.float, [batch] + rest)])
        var bindings: [String: Tensor] = [:]
        if let t {
            bindings[tIn.name] = try Tensor(shape: tShape, scalars: [Float](repeating: t, count: tShape.reduce(1, *)), name: tIn.name)
        } else {
            context.shapes[tIn.name] = TensorSpec(.float, tShape)
        }
        return (Specialize(bindings: bindings, dims: dims), context)
    }

    /// Specializes `model` for one step (time `t`, or only the batch size when nil) and runs the
    /// pipeline `passes` (the default when nil). The result records `scm.specialized.t` and
    /// `scm.specialized.batch` in its metadata.
    public static func optimize(_ model: Model, t: Float?, batch: Int, passes: [String]? = nil,
                                options: Options = Options()) throws -> (model: Model, reports: [PassReport]) {
        let (spec, context) = try stepSpecialization(model, t: t, batch: batch)
        var (m, reports) = try optimize(model, specialization: spec, context: context, passes: passes, options: options)
        m.metadata.removeAll { $0.key.hasPrefix(TrigFlowMetadata.Key.specializedPrefix) }
        if let t { m.metadata.append(MetadataEntry(TrigFlowMetadata.Key.specialized("t"), String(t))) }
        m.metadata.append(MetadataEntry(TrigFlowMetadata.Key.specialized("batch"), String(batch)))
        return (m, reports)
    }
}
