import Foundation

/// What `scm-inspect` reports about a model: interface, metadata, size and op histogram.
public struct ModelSummary: Codable, Sendable {
    /// A graph input or output.
    public struct Value: Codable, Sendable {
        public var name: String
        /// ONNX's element type name (`FLOAT`), or `null` when undeclared.
        public var dtype: String?
        /// Dims as numbers (known) or strings (symbolic, `?` for unknown); `null` for unknown rank.
        public var shape: [DimJSON]?
    }

    /// A dimension in JSON: an integer or a string.
    public enum DimJSON: Codable, Sendable, Equatable {
        case value(Int)
        case symbol(String)

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .value(let v): try c.encode(v)
            case .symbol(let s): try c.encode(s)
            }
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Int.self) { self = .value(v) } else { self = .symbol(try c.decode(String.self)) }
        }
    }

    public var irVersion: Int
    /// Imported opsets: domain ("" for ONNX's default) -> version.
    public var opsets: [String: Int]
    public var producer: String
    public var graphName: String
    public var metadata: [String: String]
    public var inputs: [Value]
    public var outputs: [Value]
    /// Number of nodes.
    public var nodes: Int
    /// op_type (as `domain:op_type` outside the default domain) -> count.
    public var ops: [String: Int]
    /// Number of initializers.
    public var initializers: Int
    /// Elements of all initializers.
    public var parameters: Int
    /// Payload bytes of all initializers.
    public var parameterBytes: Int

    enum CodingKeys: String, CodingKey {
        case irVersion = "ir_version", opsets, producer, graphName = "graph_name", metadata, inputs, outputs
        case nodes, ops, initializers, parameters, parameterBytes = "parameter_bytes"
    }

    public init(_ model: Model) {
        let g = model.graph
        irVersion = model.irVersion
        opsets = Dictionary(model.opsetImports.map { ($0.domain, $0.version) }, uniquingKeysWith: { a, _ in a })
        producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        graphName = g.name
        metadata = Dictionary(model.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        // Graph inputs that an initializer also defines are parameters with defaults, not inputs to feed.
        let initNames = Set(g.initializers.map(\.meta.name))
        inputs = g.inputs.filter { !initNames.contains($0.name) }.map(Self.value)
        outputs = g.outputs.map(Self.value)
        nodes = g.nodes.count
        var hist: [String: Int] = [:]
        for n in g.nodes {
            let key = n.op.key
            hist[key, default: 0] += 1
        }
        ops = hist
        initializers = g.initializers.count
        parameters = g.initializers.reduce(0) { $0 + $1.elementCount }
        parameterBytes = g.initializers.reduce(0) { $0 + $1.byteCount }
    }

    static func value(_ v: ValueInfo) -> Value {
        Value(name: v.name, dtype: v.type?.elementType?.name,
              shape: v.type?.shape?.map { d in
                  switch d {
                  case .value(let n): .value(n)
                  case .param(let p): .symbol(p)
                  case .unknown: .symbol("?")
                  }
              })
    }

    /// One JSON object with sorted keys.
    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? String(decoding: enc.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// A human-readable report.
    public func text() -> String {
        func shape(_ v: Value) -> String {
            let dims = v.shape.map { "[" + $0.map { d in
                switch d { case .value(let n): String(n); case .symbol(let s): s }
            }.joined(separator: ",") + "]" } ?? "[rank ?]"
            return "  \(v.name): \(v.dtype ?? "?") \(dims)"
        }
        var lines: [String] = []
        lines.append("ir_version: \(irVersion)")
        lines.append("opsets: " + opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", "))
        if !producer.isEmpty { lines.append("producer: \(producer)") }
        if !graphName.isEmpty { lines.append("graph: \(graphName)") }
        if !metadata.isEmpty {
            lines.append("metadata:")
            for (k, v) in metadata.sorted(by: { $0.key < $1.key }) { lines.append("  \(k) = \(v)") }
        }
        lines.append("inputs:")
        lines += inputs.map(shape)
        lines.append("outputs:")
        lines += outputs.map(shape)
        lines.append("nodes: \(nodes)")
        for (op, n) in ops.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
            lines.append("  \(op.padding(toLength: max(op.count, 24), withPad: " ", startingAt: 0)) \(n)")
        }
        lines.append("initializers: \(initializers)")
        lines.append("parameters: \(parameters) (\(parameterBytes) bytes)")
        return lines.joined(separator: "\n")
    }
}
