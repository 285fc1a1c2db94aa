import SCMGraph
import SCMRuntime

/// Binds graph inputs to constant tensors and fixes symbolic dims: the step that makes a model
/// one sampling step's model (`t` known, batch size known).
///
/// A bound input leaves the input list and becomes an initializer of the same name (replacing an
/// initializer that gave its default). Symbolic dims named in `dims` become concrete wherever the
/// graph declares a type (inputs, outputs, value_info).
public struct Specialize: Pass {
    public let name = "specialize"
    public var bindings: [String: Tensor]
    public var dims: [String: Int]

    public init(bindings: [String: Tensor] = [:], dims: [String: Int] = [:]) {
        self.bindings = bindings
        self.dims = dims
    }

    public func run(_ model: Model, _ context: PassContext, changes: inout [String]) throws -> Model {
        var m = model
        var g = m.graph
        for (name, value) in bindings.sorted(by: { $0.key < $1.key }) {
            guard let i = g.inputs.firstIndex(where: { $0.name == name }) else {
                throw OptimizeError("specialize: the model has no input '\(name)'")
            }
            let declared = g.inputs[i].type
            if let dt = declared?.elementType, dt != value.dtype {
                throw OptimizeError("specialize: input '\(name)' is \(dt), the bound value is \(value.dtype)")
            }
            if let s = declared?.shape {
                let concrete = s.map { d -> Int? in d.value ?? d.symbol.flatMap { dims[$0] } }
                guard s.count == value.shape.count,
                      zip(concrete, value.shape).allSatisfy({ $0 == nil || $0 == $1 }) else {
                    throw OptimizeError("specialize: input '\(name)' is declared \(s.shapeDescription), the bound value has shape \(value.shape)")
                }
            }
            g.inputs.remove(at: i)
            g.initializers.removeAll { $0.meta.name == name }
            var t = value
            t.meta = TensorMeta(name: name)
            g.initializers.append(t)
            changes.append("bound input '\(name)' to a constant \(value.dtype) \(value.shape)")
        }
        if !dims.isEmpty {
            func fix(_ v: inout ValueInfo) {
                guard var type = v.type, let s = type.shape else { return }
                let fixed = s.map { d -> Dim in d.symbol.flatMap { dims[$0] }.map { Dim.value($0) } ?? d }
                if fixed != s {
                    type.shape = fixed
                    v.type = type
                    changes.append("'\(v.name)': \(s.shapeDescription) -> \(fixed.shapeDescription)")
                }
            }
            for i in g.inputs.indices { fix(&g.inputs[i]) }
            for i in g.outputs.indices { fix(&g.outputs[i]) }
            for i in g.valueInfo.indices { fix(&g.valueInfo[i]) }
        }
        m.graph = g
        return m
    }
}
