/// The declared type of a value: tensor element type and shape. Either may be unknown.
public struct TensorType: Hashable, Sendable {
    /// The element type; `nil` when the file leaves it unset.
    public var elementType: DType?
    /// The shape; `nil` when the rank is unknown.
    public var shape: Shape?

    public init(elementType: DType?, shape: Shape?) {
        self.elementType = elementType
        self.shape = shape
    }
}

/// A named value of a graph's interface (input, output) or an annotation (value_info).
public struct ValueInfo: Sendable {
    public var name: String
    /// The tensor type; `nil` when the file gives no type or a non-tensor type (sequence, map,
    /// optional: kept whole in `preservedType`).
    public var type: TensorType?
    public var docString: String
    public var unknownFields: UnknownFields
    /// The file's `TypeProto` bytes, kept when they hold more than `type` can say (denotations,
    /// non-tensor types, fields outside our schema). Written back in place of `type` as long as
    /// `type` is unchanged since loading.
    public var preservedType: PreservedTypeProto?

    public init(_ name: String, _ type: TensorType?, docString: String = "",
                unknownFields: UnknownFields = UnknownFields()) {
        self.name = name
        self.type = type
        self.docString = docString
        self.unknownFields = unknownFields
    }

    /// A float32 (or other) tensor value with the given shape.
    public init(_ name: String, _ dtype: DType, _ shape: Shape) {
        self.init(name, TensorType(elementType: dtype, shape: shape))
    }
}

/// The bytes of a `TypeProto` as loaded, with the parsed view they were loaded as.
public struct PreservedTypeProto: Sendable {
    public var bytes: [UInt8]
    public var parsedAs: TensorType?
}

/// One operator application.
public struct Node: Sendable {
    public var name: String
    public var opType: String
    /// "" (or "ai.onnx") is ONNX's default domain; fused ops of ours use "ai.scm".
    public var domain: String
    /// Value names read; "" marks an omitted optional input.
    public var inputs: [String]
    /// Value names written; "" marks an omitted optional output.
    public var outputs: [String]
    public var attributes: [Attribute]
    public var docString: String
    public var unknownFields: UnknownFields

    public init(_ opType: String, inputs: [String], outputs: [String], name: String = "",
                domain: String = "", attributes: [Attribute] = [], docString: String = "",
                unknownFields: UnknownFields = UnknownFields()) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.docString = docString
        self.unknownFields = unknownFields
    }

    /// The attribute named `name`.
    public func attribute(_ name: String) -> Attribute? { attributes.first { $0.name == name } }

    /// How errors refer to the node at `index`: `node 'conv1' (Conv, #3)`.
    public func label(index: Int) -> String {
        let op = opType.isEmpty ? "no op_type" : opType
        return name.isEmpty ? "node #\(index) (\(op))" : "node '\(name)' (\(op), #\(index))"
    }
}

/// A computation graph: nodes, parameters (initializers) and its interface.
public struct Graph: Sendable {
    public var name: String
    public var docString: String
    /// Nodes in file order (ONNX requires topological order; `topologicalOrder()` computes one).
    public var nodes: [Node]
    /// Constant tensors, each named by `meta.name`.
    public var initializers: [Tensor]
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var valueInfo: [ValueInfo]
    public var unknownFields: UnknownFields

    public init(name: String = "", nodes: [Node] = [], initializers: [Tensor] = [], inputs: [ValueInfo] = [],
                outputs: [ValueInfo] = [], valueInfo: [ValueInfo] = [], docString: String = "",
                unknownFields: UnknownFields = UnknownFields()) {
        self.name = name
        self.docString = docString
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
        self.valueInfo = valueInfo
        self.unknownFields = unknownFields
    }

    /// The initializer named `name`.
    public func initializer(_ name: String) -> Tensor? { initializers.first { $0.meta.name == name } }
}

/// An imported operator set.
public struct OpsetImport: Hashable, Sendable {
    public var domain: String
    public var version: Int
    public var unknownFields: UnknownFields

    public init(domain: String, version: Int, unknownFields: UnknownFields = UnknownFields()) {
        self.domain = domain
        self.version = version
        self.unknownFields = unknownFields
    }
}

/// A key/value string pair of `metadata_props`.
public struct MetadataEntry: Hashable, Sendable {
    public var key: String
    public var value: String
    public var unknownFields: UnknownFields

    public init(_ key: String, _ value: String, unknownFields: UnknownFields = UnknownFields()) {
        self.key = key
        self.value = value
        self.unknownFields = unknownFields
    }
}

/// A model file's content: a graph plus the model-level fields of `ModelProto`.
public struct Model: Sendable {
    /// ONNX IR version (10 for opset 21 era files).
    public var irVersion: Int
    public var opsetImports: [OpsetImport]
    public var producerName: String
    public var producerVersion: String
    public var domain: String
    public var modelVersion: Int
    public var docString: String
    public var graph: Graph
    /// `metadata_props` in file order.
    public var metadata: [MetadataEntry]
    public var unknownFields: UnknownFields

    public init(graph: Graph, irVersion: Int = 10, opsetImports: [OpsetImport] = [OpsetImport(domain: "", version: 21)],
                producerName: String = "scm", producerVersion: String = "", domain: String = "",
                modelVersion: Int = 0, docString: String = "", metadata: [MetadataEntry] = [],
                unknownFields: UnknownFields = UnknownFields()) {
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.domain = domain
        self.modelVersion = modelVersion
        self.docString = docString
        self.graph = graph
        self.metadata = metadata
        self.unknownFields = unknownFields
    }

    /// The value of the first metadata entry with `key`.
    public func metadataValue(_ key: String) -> String? { metadata.first { $0.key == key }?.value }

    /// The imported version of `domain` ("" and "ai.onnx" are the same domain).
    public func opsetVersion(_ domain: String) -> Int? {
        let d = Self.canonicalDomain(domain)
        return opsetImports.first { Self.canonicalDomain($0.domain) == d }?.version
    }

    static func canonicalDomain(_ d: String) -> String { d == "ai.onnx" ? "" : d }

    /// Whether `domain` names ONNX's default domain ("" or "ai.onnx").
    public static func isDefaultDomain(_ domain: String) -> Bool { canonicalDomain(domain).isEmpty }

    /// The domain of this project's own ops (fused kernels, gradients, the optimizer update).
    public static let scmDomain = "ai.scm"

    /// Declares `ai.scm` (version 1) when a node uses it and the model does not yet import it.
    public mutating func declareSCMDomainIfUsed() {
        if opsetVersion(Self.scmDomain) == nil, graph.nodes.contains(where: { $0.domain == Self.scmDomain }) {
            opsetImports.append(OpsetImport(domain: Self.scmDomain, version: 1))
        }
    }
}
