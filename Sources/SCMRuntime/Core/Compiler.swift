import SCMGraph

/// Turns a model into a `Plan`: resolves an op per node, infers static shapes, folds every node
/// whose inputs are known, and lays out memory.
public enum Compiler {
    /// The largest tensor a plan accepts (elements): 2^30, 4 GiB of float32.
    public static let maxTensorElements = 1 << 30

    /// Compiles `model`.
    /// - Parameters:
    ///   - shapes: concrete types of graph inputs (needed where the file declares symbolic dims);
    ///     inputs not listed use their declared type.
    ///   - values: values of graph inputs that the compiler may fix ("pin") when a node needs them
    ///     at compile time, e.g. Reshape's `shape`; `run` then checks the value is the same.
    ///   - constants: graph inputs bound to constants (specialization): they leave the input list.
    ///   - limits: `Model.checkResources`, then the elements of every value, the bytes of the
    ///     values evaluated at compile time (with the initializers, `maxInitializerBytes`) and the
    ///     planned activation memory (arena plus scratch, `maxActivationBytes`): each is a
    ///     `.limitExceeded` error naming the node or input, thrown before anything that large is
    ///     allocated.
    ///   - precision: the convolutions' arithmetic (`Precision`); bf16 applies to the steps'
    ///     convolutions with constant weights, never to what is folded at compile time, and runs
    ///     float32 on a CPU without AVX512-BF16 (`Plan.precision`).
    public static func compile(_ model: Model, shapes: [String: TensorSpec] = [:], values: [String: Tensor] = [:],
                               constants: [String: Tensor] = [:], limits: ResourceLimits = .standard,
                               precision: Precision = .fp32) throws -> Plan {
        _ = BLAS.configure  // before the first run: OpenBLAS's own threads stopped (BLAS)
        var pinned = Set<String>()
        while true {
            do {
                return try Build(model: model, shapes: shapes, values: values, constants: constants, pinned: pinned,
                                 limits: limits, precision: precision.effective).run()
            } catch let e as RuntimeError where e.kind == .needsValue {
                guard let name = e.inputName, values[name] != nil, !pinned.contains(name) else { throw e }
                pinned.insert(name)
            } catch {
                throw namingInputs(error, model, shapes: shapes, values: values)
            }
        }
    }

    /// `error`, when the given inputs disagree on a dimension their declarations share (x is
    /// [N, ...] and t is [N], given with N = 2 and N = 3), as that disagreement: the node where
    /// it surfaced is the symptom, not the cause.
    static func namingInputs(_ error: any Error, _ model: Model, shapes: [String: TensorSpec], values: [String: Tensor]) -> any Error {
        var seen: [String: (input: String, size: Int)] = [:]
        for vi in model.graph.inputs {
            guard let declared = vi.type?.shape, let given = shapes[vi.name]?.shape ?? values[vi.name]?.shape,
                  declared.count == given.count else { continue }
            for (d, size) in zip(declared, given) {
                guard let symbol = d.symbol else { continue }
                guard let first = seen[symbol] else { seen[symbol] = (vi.name, size); continue }
                if first.size != size {
                    return RuntimeError(.badInput, at: "inputs", "'\(first.input)' has \(symbol) = \(first.size), '\(vi.name)' has \(symbol) = \(size): inputs that share the dimension '\(symbol)' must agree (\(error))")
                }
            }
        }
        return error
    }
}

/// What the compiler knows about a graph before it lays out memory: the type of every value and
/// the values known at compile time (initializers, specialized inputs, and every node output
/// computed from them with the runtime's own kernels).
public struct GraphAnalysis: Sendable {
    /// The type of every value the graph defines.
    public let specs: [String: TensorSpec]
    /// The values known at compile time, by name.
    public let constants: [String: Tensor]
    /// A topological order of the graph's nodes.
    public let order: [Int]
}

extension Compiler {
    /// Infers every value's type and evaluates every node whose inputs are known, as `compile`
    /// does, without planning memory. Graph inputs in `constants` count as known.
    public static func analyze(_ model: Model, shapes: [String: TensorSpec] = [:],
                               constants: [String: Tensor] = [:], limits: ResourceLimits = .standard) throws -> GraphAnalysis {
        let a: Build.Analysis
        do {
            a = try Build(model: model, shapes: shapes, values: [:], constants: constants, pinned: [], limits: limits, precision: .fp32).analyze()
        } catch {
            throw namingInputs(error, model, shapes: shapes, values: [:])
        }
        return GraphAnalysis(specs: a.vals.mapValues(\.spec), constants: a.vals.compactMapValues(\.constant), order: a.order)
    }
}

/// One compilation attempt.
private struct Build {
    let model: Model
    let shapes: [String: TensorSpec]
    let values: [String: Tensor]
    let constants: [String: Tensor]
    let pinned: Set<String>
    let limits: ResourceLimits
    /// The steps' convolution arithmetic (already what this CPU runs).
    let precision: Precision

    /// The element limit of every value: the caller's, within the runtime's own cap.
    var maxElements: Int { min(limits.maxTensorElements, Compiler.maxTensorElements) }

    func tooLarge(_ at: String, _ shape: [Int]) -> RuntimeError {
        guard let n = ShapeMath.elementCount(shape) else {
            return RuntimeError(.invalidModel, at: at, "shape \(shape) is negative or its element count overflows")
        }
        return RuntimeError(.limitExceeded, at: at, "shape \(shape) has \(n) elements, more than the limit of \(maxElements) (max-tensor-elements)")
    }

    struct Value {
        var spec: TensorSpec
        var constant: Tensor?
        var graphInput: String?
    }

    /// Values, kernel nodes and views of the graph, before memory layout.
    struct Analysis {
        var vals: [String: Value]
        var pending: [Pending]
        var views: [String: String]
        var folded: Int
        var planInputs: [(String, TensorSpec, Tensor?)]
        var order: [Int]
    }

    struct Pending {
        let node: Int
        let build: OpBuild
    }

    /// Binds the graph inputs in `vals`: given constants, pinned values and the shapes given (or
    /// declared) for the rest; returns the plan's inputs (name, type, pinned value).
    func bindInputs(_ vals: inout [String: Value]) throws -> [(String, TensorSpec, Tensor?)] {
        var planInputs: [(String, TensorSpec, Tensor?)] = []
        for vi in model.graph.inputs {
            let name = vi.name
            if let c = constants[name] {
                vals[name] = Value(spec: TensorSpec(c.dtype, c.shape), constant: c)
                continue
            }
            if vals[name] != nil && shapes[name] == nil && values[name] == nil { continue }  // initializer default
            let spec: TensorSpec
            if let s = shapes[name] {
                spec = s
            } else if let v = values[name] {
                spec = TensorSpec(v.dtype, v.shape)
            } else {
                guard let dt = vi.type?.elementType else {
                    throw RuntimeError(.unsupported, at: "input '\(name)'", "is not a tensor with a known element type")
                }
                guard let dims = vi.type?.shape, let c = dims.concrete else {
                    throw RuntimeError(.badInput, at: "input '\(name)'",
                                       "has shape \(vi.type?.shape?.shapeDescription ?? "unknown"): give a concrete shape when compiling")
                }
                spec = TensorSpec(dt, c)
            }
            if let dt = vi.type?.elementType, dt != spec.dtype {
                throw RuntimeError(.badInput, at: "input '\(name)'", "declared \(dt), given \(spec.dtype)")
            }
            if let dims = vi.type?.shape {
                guard dims.count == spec.rank, zip(dims, spec.shape).allSatisfy({ $0.value == nil || $0.value == $1 }) else {
                    throw RuntimeError(.badInput, at: "input '\(name)'", "declared \(dims.shapeDescription), given \(spec.shape)")
                }
            }
            guard spec.dtype.isByteAligned else {
                throw RuntimeError(.unsupported, at: "input '\(name)'", "dtype \(spec.dtype) is not supported")
            }
            guard let n = ShapeMath.elementCount(spec.shape), n <= maxElements else { throw tooLarge("input '\(name)'", spec.shape) }
            let pin = pinned.contains(name) ? values[name] : nil
            vals[name] = Value(spec: spec, constant: pin, graphInput: name)
            planInputs.append((name, spec, pin))
        }
        return planInputs
    }

    func analyze() throws -> Analysis {
        let graph = model.graph
        do { try model.checkResources(limits) } catch let e as ModelError { throw RuntimeError(.limitExceeded, at: e.location, e.message) }
        // Bytes of the values known at compile time: initializers, then every folded output.
        var constantBytes = graph.initializers.reduce(0) { $0 + $1.byteCount }
        let opset = model.opsetVersion("") ?? 0
        if graph.nodes.contains(where: { Model.isDefaultDomain($0.domain) }) {
            guard opset >= 13 else {
                throw RuntimeError(.unsupported, at: "model", "default-domain opset \(opset) is not supported (13 or later)")
            }
        }
        var vals: [String: Value] = [:]
        for t in graph.initializers {
            vals[t.meta.name] = Value(spec: TensorSpec(t.dtype, t.shape), constant: t)
        }
        let planInputs = try bindInputs(&vals)

        // Nodes in order; each becomes a step, a constant or a view.
        var pending: [Pending] = []
        var views: [String: String] = [:]  // view output -> its input
        var folded = 0
        let foldPool = ThreadPool(threads: 1)
        let order = try graph.topologicalOrder()
        for i in order {
            let node = graph.nodes[i]
            let label = node.label(index: i)
            let key = node.op.key
            guard let op = OpRegistry.op(key) else {
                throw RuntimeError(.unsupported, at: label, "op \(key) is not supported by this runtime")
            }
            var ins: [TensorSpec?] = [], consts: [Tensor?] = [], gnames: [String?] = []
            for name in node.inputs {
                if name.isEmpty {
                    ins.append(nil); consts.append(nil); gnames.append(nil)
                    continue
                }
                guard let v = vals[name] else { throw RuntimeError(.invalidModel, at: label, "input '\(name)' is not defined") }
                ins.append(v.spec); consts.append(v.constant); gnames.append(v.graphInput)
            }
            let domainOpset = Model.isDefaultDomain(node.domain) ? opset : (model.opsetVersion(node.domain) ?? 1)
            var ctx = OpContext(node: node, label: label, opset: domainOpset, inputs: ins, values: consts, graphInputNames: gnames)
            ctx.maxElements = maxElements
            // Nodes whose inputs are all known are evaluated now (and stay float32).
            if !ins.indices.allSatisfy({ ins[$0] == nil || consts[$0] != nil }) { ctx.precision = precision }
            let b = try op.build(ctx)
            guard b.outputs.count == node.outputs.count else {
                throw RuntimeError(.invalidModel, at: label, "produces \(b.outputs.count) outputs, node lists \(node.outputs.count)")
            }
            for s in b.outputs {
                guard s.dtype.isByteAligned else { throw RuntimeError(.unsupported, at: label, "output dtype \(s.dtype) is not supported") }
                guard let n = ShapeMath.elementCount(s.shape), n <= maxElements else { throw tooLarge(label, s.shape) }
            }
            let present = consts.enumerated().filter { ins[$0.offset] != nil }
            let allConst = present.allSatisfy { $0.element != nil }
            var outConsts: [Tensor]? = b.constants
            if outConsts == nil {
                if let k = b.kernel, allConst {
                    outConsts = try evaluate(k, b, inputs: consts, pool: foldPool)
                } else if b.kernel == nil, let src = consts.first ?? nil, let s = src.storage {
                    outConsts = [try Tensor(dtype: b.outputs[0].dtype, shape: b.outputs[0].shape, data: .bytes(s))]
                }
                if outConsts != nil { folded += 1 }
            } else {
                folded += 1
            }
            if let oc = outConsts {
                constantBytes += oc.reduce(0) { $0 + ($1.storage?.bytes.count ?? 0) }
                guard constantBytes <= limits.maxInitializerBytes else {
                    throw RuntimeError(.limitExceeded, at: label, "values known at compile time reach \(constantBytes) bytes, over the limit of \(limits.maxInitializerBytes) (max-initializer-bytes)")
                }
                for (name, t) in zip(node.outputs, oc) where !name.isEmpty {
                    var t = t
                    t.meta = TensorMeta(name: name)
                    vals[name] = Value(spec: TensorSpec(t.dtype, t.shape), constant: t)
                }
                continue
            }
            if b.kernel == nil {
                guard let src = node.inputs.first, !src.isEmpty, b.outputs.count == 1,
                      b.outputs[0].byteCount == ins[0]?.byteCount else {
                    throw RuntimeError(.invalidModel, at: label, "view does not preserve its input's bytes")
                }
                views[node.outputs[0]] = src
            }
            for (name, s) in zip(node.outputs, b.outputs) where !name.isEmpty { vals[name] = Value(spec: s) }
            pending.append(Pending(node: i, build: b))
        }
        for o in graph.outputs {
            guard let v = vals[o.name] else {
                throw RuntimeError(.invalidModel, at: "output '\(o.name)'", "is not produced by any node")
            }
            guard v.spec.dtype.isByteAligned, v.constant.map({ $0.storage != nil }) ?? true else {
                throw RuntimeError(.unsupported, at: "output '\(o.name)'", "dtype \(v.spec.dtype) is not supported")
            }
        }
        return Analysis(vals: vals, pending: pending, views: views, folded: folded, planInputs: planInputs, order: order)
    }

    func run() throws -> Plan {
        let graph = model.graph
        let a = try analyze()
        let vals = a.vals, pending = a.pending, views = a.views, folded = a.folded, planInputs = a.planInputs

        // Memory: one buffer per runtime value, shared by views and in-place outputs.
        var constList: [Tensor] = []
        var constIndex: [String: Int] = [:]
        func constSlot(_ name: String, _ t: Tensor) -> Slot {
            if let i = constIndex[name] { return .constant(i) }
            constList.append(t)
            constIndex[name] = constList.count - 1
            return .constant(constList.count - 1)
        }
        // Last use (step index) of each value; graph outputs live to the end.
        var lastUse: [String: Int] = [:]
        var stepOf = 0
        for p in pending {
            let node = graph.nodes[p.node]
            // A view's reads count at the next kernel step (its own bytes live on in its output).
            for n in node.inputs where !n.isEmpty { lastUse[n] = max(lastUse[n] ?? -1, stepOf) }
            if p.build.kernel != nil { stepOf += 1 }
        }
        for o in graph.outputs { lastUse[o.name] = stepOf }  // one past the last kernel step
        var planner = MemoryPlanner()
        var bufferOf: [String: Int] = [:]
        for (name, spec, _) in planInputs {
            bufferOf[name] = planner.add(bytes: spec.byteCount, def: -1)
            planner.use(bufferOf[name]!, at: lastUse[name] ?? -1)
        }
        var stepIndex = 0
        var protoSteps: [(p: Pending, ins: [String], outs: [Int])] = []
        for p in pending {
            let node = graph.nodes[p.node]
            if p.build.kernel == nil {
                let b = bufferOf[views[node.outputs[0]]!]!
                bufferOf[node.outputs[0]] = b
                planner.use(b, at: lastUse[node.outputs[0]] ?? stepIndex)
                continue
            }
            var outs: [Int] = []
            for (k, name) in node.outputs.enumerated() {
                let bytes = p.build.outputs[k].byteCount
                if name.isEmpty {
                    outs.append(planner.add(bytes: bytes, def: stepIndex))
                    continue
                }
                var reuse: Int? = nil
                if k == 0 {
                    for j in p.build.inPlace where j < node.inputs.count {
                        let src = node.inputs[j]
                        guard !src.isEmpty, vals[src]?.constant == nil, let b = bufferOf[src] else { continue }
                        if planner.bytes(b) == bytes && planner.lastUse(b) == stepIndex && !node.inputs.enumerated().contains(where: { $0.offset != j && $0.element == src }) {
                            reuse = b
                            break
                        }
                    }
                }
                let b = reuse ?? planner.add(bytes: bytes, def: stepIndex)
                bufferOf[name] = b
                planner.use(b, at: lastUse[name] ?? stepIndex)
                outs.append(b)
            }
            protoSteps.append((p, node.inputs, outs))
            stepIndex += 1
        }
        let layout = planner.layout()
        let planned = protoSteps.reduce(layout.total) { max($0, layout.total + $1.p.build.scratchBytes) }
        guard planned <= limits.maxActivationBytes else {
            let batch = planInputs.first.map { "batch \($0.1.shape.first ?? 1), " } ?? ""
            throw RuntimeError(.limitExceeded, at: "model",
                               "planned activation memory is \(planned) bytes (\(batch)arena \(layout.total) + scratch), over the limit of \(limits.maxActivationBytes) (max-activation-bytes)")
        }
        func slot(_ name: String) -> Slot {
            if name.isEmpty { return .none }
            if let c = vals[name]?.constant, bufferOf[name] == nil { return constSlot(name, c) }
            return .arena(layout.offsets[bufferOf[name]!])
        }
        var steps: [Step] = []
        var scratch = 0
        for (p, ins, outs) in protoSteps {
            let node = graph.nodes[p.node]
            steps.append(Step(label: node.label(index: p.node), opType: node.opType, kernel: p.build.kernel!,
                              inputs: ins.map(slot), outputs: outs.map { .arena(layout.offsets[$0]) }, outputSpecs: p.build.outputs,
                              flops: p.build.flops))
            scratch = max(scratch, p.build.scratchBytes)
        }
        let inputs = planInputs.map { PlanInput(name: $0.0, spec: $0.1, pinned: $0.2, slot: .arena(layout.offsets[bufferOf[$0.0]!])) }
        let outputs = graph.outputs.map { o in PlanOutput(name: o.name, spec: vals[o.name]!.spec, slot: slot(o.name)) }
        return Plan(inputs: inputs, outputs: outputs, steps: steps, constants: constList, arenaBytes: layout.total,
                    unplannedBytes: planner.sumBytes, scratchBytes: scratch, foldedNodes: folded, precision: precision)
    }

    /// Runs a kernel once on constant inputs (constant folding during compilation).
    func evaluate(_ kernel: any Kernel, _ b: OpBuild, inputs: [Tensor?], pool: ThreadPool) throws -> [Tensor] {
        let outs = b.outputs.map { spec in TensorStorage(byteCount: spec.byteCount) { _ in } }
        let inPtrs = UnsafeMutablePointer<UnsafeRawPointer>.allocate(capacity: max(inputs.count, 1))
        let outPtrs = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: max(outs.count, 1))
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(b.scratchBytes, 64), alignment: 64)
        defer { inPtrs.deallocate(); outPtrs.deallocate(); scratch.deallocate() }
        let dummy = UnsafeRawPointer(scratch)
        for (i, t) in inputs.enumerated() { (inPtrs + i).initialize(to: t?.storage?.bytes.baseAddress ?? dummy) }
        for (i, s) in outs.enumerated() {
            (outPtrs + i).initialize(to: UnsafeMutableRawPointer(mutating: s.bytes.baseAddress ?? dummy))
        }
        withExtendedLifetime(inputs) {
            kernel.run(KernelIO(ins: inPtrs, outs: outPtrs, pool: pool, scratchBase: scratch, scratchStride: 0))
        }
        return try zip(b.outputs, outs).map { try Tensor(dtype: $0.dtype, shape: $0.shape, data: .bytes($1)) }
    }
}

