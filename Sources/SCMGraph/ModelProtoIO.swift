import CModelProto
import Foundation

// The one place where protobuf-c's C structs meet the Swift IR. Nothing of CModelProto escapes
// this file: decoding builds `Model`/`Tensor` values, encoding builds C structs from them in an
// arena that is freed once packed.

/// Owns a message decoded by protobuf-c; tensors borrow their payload from it.
final class DecodedMessage: @unchecked Sendable {
    private let pointer: UnsafeMutablePointer<ProtobufCMessage>
    init(_ pointer: UnsafeMutablePointer<ProtobufCMessage>) { self.pointer = pointer }
    deinit { protobuf_c_message_free_unpacked(pointer, nil) }
}

// MARK: - Decoding

/// Converts decoded C messages to IR values, checking what the wire scan cannot (dtypes, dims,
/// payload sizes, attribute kinds).
struct ProtoDecoder {
    let owner: DecodedMessage
    let limits: LoadLimits
    let externalData: ExternalDataReader?

    static func decodeModel(bytes: UnsafeRawBufferPointer, limits: LoadLimits, source: String,
                            externalData: ExternalDataReader?) throws -> Model {
        var scan = WireScan(bytes: bytes, limits: limits, source: source)
        try scan.scan(as: .model)
        guard let msg = withBase(bytes, { scm__model_proto__unpack(nil, bytes.count, $0) }) else {
            throw ModelError(.malformedProtobuf, at: source,
                             "protobuf-c could not decode the model (out of memory?) although its wire format is valid")
        }
        let owner = msg.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { DecodedMessage($0) }
        let decoder = ProtoDecoder(owner: owner, limits: limits, externalData: externalData)
        return try decoder.model(msg.pointee, source: source)
    }

    static func decodeTensor(bytes: UnsafeRawBufferPointer, limits: LoadLimits, source: String) throws -> Tensor {
        var scan = WireScan(bytes: bytes, limits: limits, source: source)
        try scan.scan(as: .tensor)
        guard let msg = withBase(bytes, { scm__tensor_proto__unpack(nil, bytes.count, $0) }) else {
            throw ModelError(.malformedProtobuf, at: source, "protobuf-c could not decode the tensor")
        }
        let owner = msg.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { DecodedMessage($0) }
        let decoder = ProtoDecoder(owner: owner, limits: limits, externalData: nil)
        return try decoder.tensor(msg.pointee, at: source)
    }

    /// Calls `body` with the buffer's start, or with a valid dummy pointer for an empty buffer.
    private static func withBase<R>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        if let base = bytes.baseAddress { return body(base.assumingMemoryBound(to: UInt8.self)) }
        var zero: UInt8 = 0
        return withUnsafePointer(to: &zero) { body($0) }
    }

    // MARK: Messages

    func model(_ m: Scm__ModelProto, source: String) throws -> Model {
        guard let g = m.graph else { throw ModelError(.invalidModel, at: source, "ModelProto has no graph") }
        let graph = try self.graph(g.pointee)
        return Model(
            graph: graph,
            irVersion: m.has_ir_version != 0 ? Int(m.ir_version) : 0,
            opsetImports: (0..<m.n_opset_import).map { i in
                let o = m.opset_import[i]!.pointee
                return OpsetImport(domain: str(o.domain), version: o.has_version != 0 ? Int(o.version) : 0,
                                   unknownFields: unknowns(o.base))
            },
            producerName: str(m.producer_name), producerVersion: str(m.producer_version),
            domain: str(m.domain), modelVersion: m.has_model_version != 0 ? Int(m.model_version) : 0,
            docString: str(m.doc_string),
            metadata: (0..<m.n_metadata_props).map { entry(m.metadata_props[$0]!.pointee) },
            unknownFields: unknowns(m.base))
    }

    func graph(_ g: Scm__GraphProto) throws -> Graph {
        var initializers: [Tensor] = []
        initializers.reserveCapacity(g.n_initializer)
        for i in 0..<g.n_initializer {
            let t = g.initializer[i]!.pointee
            initializers.append(try tensor(t, at: "initializer #\(i) '\(str(t.name))'"))
        }
        var nodes: [Node] = []
        nodes.reserveCapacity(g.n_node)
        for i in 0..<g.n_node { nodes.append(try node(g.node[i]!.pointee, index: i)) }
        func infos(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<Scm__ValueInfoProto>?>?, _ what: String) throws -> [ValueInfo] {
            try (0..<n).map { try valueInfo(p![$0]!.pointee, at: "\(what) #\($0)") }
        }
        return Graph(name: str(g.name), nodes: nodes, initializers: initializers,
                     inputs: try infos(g.n_input, g.input, "graph input"),
                     outputs: try infos(g.n_output, g.output, "graph output"),
                     valueInfo: try infos(g.n_value_info, g.value_info, "value_info"),
                     docString: str(g.doc_string), unknownFields: unknowns(g.base))
    }

    func node(_ n: Scm__NodeProto, index: Int) throws -> Node {
        var node = Node(str(n.op_type),
                        inputs: (0..<n.n_input).map { str(n.input[$0]) },
                        outputs: (0..<n.n_output).map { str(n.output[$0]) },
                        name: str(n.name), domain: str(n.domain), docString: str(n.doc_string),
                        unknownFields: unknowns(n.base))
        for i in 0..<n.n_attribute {
            node.attributes.append(try attribute(n.attribute[i]!.pointee, at: "\(node.label(index: index)) attribute #\(i)"))
        }
        return node
    }

    func attribute(_ a: Scm__AttributeProto, at whereRaw: String) throws -> Attribute {
        let name = str(a.name)
        let at = whereRaw + (name.isEmpty ? "" : " '\(name)'")
        let extras = unknowns(a.base)
        // Which value fields are present (by AttributeType code), including those kept as unknown fields.
        var present: [Int32] = []
        if a.has_f != 0 { present.append(1) }
        if a.has_i != 0 { present.append(2) }
        if a.has_s != 0 { present.append(3) }
        if a.t != nil { present.append(4) }
        if a.n_floats > 0 { present.append(6) }
        if a.n_ints > 0 { present.append(7) }
        if a.n_strings > 0 { present.append(8) }
        if a.n_tensors > 0 { present.append(9) }
        let opaqueFieldCodes: [UInt32: Int32] = [6: 5, 11: 10, 22: 11, 23: 12, 14: 13, 15: 14]
        for number in extras.numbers { if let code = opaqueFieldCodes[number] { present.append(code) } }
        let code: Int32
        if a.has_type != 0 && a.type.rawValue != 0 {
            code = Int32(bitPattern: a.type.rawValue)
        } else {
            // Files from before `type` existed: the one value field present says the type.
            guard present.count == 1 else {
                throw ModelError(.invalidAttribute, at: at, present.isEmpty ? "has no type and no value"
                                 : "has no type and several value fields")
            }
            code = present[0]
        }
        let isList = [6, 7, 8, 9, 10, 12, 14].contains(code)
        guard (0...14).contains(code) && code != 0 else {
            throw ModelError(.invalidAttribute, at: at, "unknown attribute type \(code)")
        }
        let others = present.filter { $0 != code }
        if !others.isEmpty {
            throw ModelError(.invalidAttribute, at: at, "is \(AttributeValue.typeName(code)) but also sets the field for \(AttributeValue.typeName(others[0]))")
        }
        if !isList && present.isEmpty && ![5, 11, 13].contains(code) {
            throw ModelError(.invalidAttribute, at: at, "is \(AttributeValue.typeName(code)) but its value field is missing")
        }
        let value: AttributeValue
        switch code {
        case 1: value = .float(a.f)
        case 2: value = .int(Int(a.i))
        case 3: value = .string(bytesOf(a.s))
        case 4:
            guard let t = a.t else { throw ModelError(.invalidAttribute, at: at, "TENSOR value missing") }
            value = .tensor(try tensor(t.pointee, at: at))
        case 6: value = .floats(Array(UnsafeBufferPointer(start: a.floats, count: a.n_floats)))
        case 7: value = .ints(UnsafeBufferPointer(start: a.ints, count: a.n_ints).map { Int($0) })
        case 8: value = .strings((0..<a.n_strings).map { bytesOf(a.strings[$0]) })
        case 9: value = .tensors(try (0..<a.n_tensors).map { try tensor(a.tensors[$0]!.pointee, at: "\(at) tensor #\($0)") })
        default: value = .opaque(typeCode: code)
        }
        return Attribute(name, value, docString: str(a.doc_string), refAttrName: str(a.ref_attr_name),
                         unknownFields: extras)
    }

    func valueInfo(_ v: Scm__ValueInfoProto, at whereRaw: String) throws -> ValueInfo {
        let name = str(v.name)
        let at = "\(whereRaw) '\(name)'"
        var info = ValueInfo(name, nil, docString: str(v.doc_string), unknownFields: unknowns(v.base))
        guard let tpPointer = v.type else { return info }
        let tp = tpPointer.pointee
        var lossy = tp.denotation != nil || tp.base.n_unknown_fields > 0
        if tp.value_case.rawValue == SCM__TYPE_PROTO__VALUE_TENSOR_TYPE.rawValue, let tt = tp.tensor_type?.pointee {
            lossy = lossy || tt.base.n_unknown_fields > 0
            var elem: DType? = nil
            if tt.has_elem_type != 0 && tt.elem_type != 0 {
                guard let d = DType(rawValue: tt.elem_type) else {
                    throw ModelError(.unknownDataType, at: at, "unknown element type \(tt.elem_type)")
                }
                elem = d
            }
            var shape: Shape? = nil
            if let sp = tt.shape?.pointee {
                lossy = lossy || sp.base.n_unknown_fields > 0
                var dims: Shape = []
                for i in 0..<sp.n_dim {
                    let d = sp.dim[i]!.pointee
                    lossy = lossy || d.denotation != nil || d.base.n_unknown_fields > 0
                    switch d.value_case.rawValue {
                    case SCM__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE.rawValue:
                        guard d.dim_value >= 0 else {
                            throw ModelError(.invalidModel, at: at, "dim \(i) is negative (\(d.dim_value))")
                        }
                        dims.append(.value(Int(d.dim_value)))
                    case SCM__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM.rawValue:
                        dims.append(.param(str(d.dim_param)))
                    default: dims.append(.unknown)
                    }
                }
                shape = dims
            }
            info.type = TensorType(elementType: elem, shape: shape)
        } else {
            lossy = true  // a sequence, map, optional or opaque type: kept whole
        }
        if lossy {
            info.preservedType = PreservedTypeProto(bytes: packed(UnsafeRawPointer(tpPointer)), parsedAs: info.type)
        }
        return info
    }

    func entry(_ e: Scm__StringStringEntryProto) -> MetadataEntry {
        MetadataEntry(str(e.key), str(e.value), unknownFields: unknowns(e.base))
    }

    // MARK: Tensors

    func tensor(_ t: Scm__TensorProto, at whereRaw: String) throws -> Tensor {
        let name = str(t.name)
        let at = whereRaw.isEmpty ? "tensor '\(name)'" : whereRaw
        guard t.has_data_type != 0, t.data_type != 0 else {
            throw ModelError(.unknownDataType, at: at, "data_type is missing (UNDEFINED)")
        }
        guard let dtype = DType(rawValue: t.data_type) else {
            throw ModelError(.unknownDataType, at: at, "unknown data type \(t.data_type)")
        }
        guard t.n_dims <= limits.maxRank else {
            throw ModelError(.limitExceeded, at: at, "tensor has \(t.n_dims) dims (limit \(limits.maxRank))")
        }
        let dims = UnsafeBufferPointer(start: t.dims, count: t.n_dims).map { Int($0) }
        if let neg = dims.firstIndex(where: { $0 < 0 }) {
            throw ModelError(.invalidTensor, at: at, "dim \(neg) is negative (\(dims[neg]))")
        }
        guard let count = ShapeMath.elementCount(dims) else {
            throw ModelError(.invalidTensor, at: at, "dims \(dims) have a product that overflows")
        }
        var meta = TensorMeta(name: name, docString: str(t.doc_string), unknownFields: unknowns(t.base))

        // Which payload fields are set.
        var sources: [String] = []
        if t.has_raw_data != 0 && t.raw_data.len > 0 { sources.append("raw_data") }
        if t.n_float_data > 0 { sources.append("float_data") }
        if t.n_int32_data > 0 { sources.append("int32_data") }
        if t.n_int64_data > 0 { sources.append("int64_data") }
        if t.n_double_data > 0 { sources.append("double_data") }
        if t.n_uint64_data > 0 { sources.append("uint64_data") }
        if t.n_string_data > 0 { sources.append("string_data") }
        let external = t.has_data_location != 0 && t.data_location.rawValue == SCM__TENSOR_PROTO__DATA_LOCATION__EXTERNAL.rawValue
        if external { sources.append("external data") }
        guard sources.count <= 1 else {
            throw ModelError(.invalidTensor, at: at, "payload is set in both \(sources[0]) and \(sources[1])")
        }

        if dtype == .string {
            guard sources.isEmpty || sources == ["string_data"] else {
                throw ModelError(.invalidTensor, at: at, "STRING tensor stores its payload in \(sources[0]); expected string_data")
            }
            guard t.n_string_data == count else {
                throw ModelError(.invalidTensor, at: at, "has \(t.n_string_data) strings, expected \(count) for dims \(dims)")
            }
            meta.encoding = .typedField
            return try Tensor(dtype: .string, shape: dims, data: .strings((0..<count).map { bytesOf(t.string_data[$0]) }), meta: meta)
        }

        guard let byteCount = dtype.byteCount(elements: count) else {
            throw ModelError(.invalidTensor, at: at, "payload size overflows for \(dtype) \(dims)")
        }
        if external {
            guard let reader = externalData else {
                throw ModelError(.externalData, at: at, "uses external data, which needs the model's file path to resolve")
            }
            let (storage, location, offset) = try reader.read(entries: (0..<t.n_external_data).map { entry(t.external_data[$0]!.pointee) },
                                                               expectedBytes: byteCount, at: at)
            meta.encoding = .external(location: location, offset: offset, length: byteCount)
            return try Tensor(dtype: dtype, shape: dims, data: .bytes(storage), meta: meta)
        }
        if t.n_external_data > 0 {
            throw ModelError(.externalData, at: at, "has external_data entries but data_location is not EXTERNAL")
        }
        let storage: TensorStorage
        if sources.isEmpty || sources == ["raw_data"] {
            let n = t.has_raw_data != 0 ? t.raw_data.len : 0
            guard n == byteCount else {
                throw ModelError(.invalidTensor, at: at, "raw_data has \(n) bytes, expected \(byteCount) for \(dtype) \(dims)")
            }
            meta.encoding = .rawData
            storage = TensorStorage(borrowing: UnsafeRawBufferPointer(start: t.raw_data.data, count: n), owner: owner)
        } else {
            meta.encoding = .typedField
            storage = try typedPayload(t, dtype: dtype, count: count, byteCount: byteCount, field: sources[0], at: at)
        }
        return try Tensor(dtype: dtype, shape: dims, data: .bytes(storage), meta: meta)
    }

    /// The payload from the typed field ONNX assigns to `dtype`, borrowed where the field already
    /// has the dtype's layout and converted otherwise.
    private func typedPayload(_ t: Scm__TensorProto, dtype: DType, count: Int, byteCount: Int, field: String,
                              at: String) throws -> TensorStorage {
        let layout = TypedFieldLayout(dtype)
        guard layout.field == field else {
            throw ModelError(.invalidTensor, at: at, "\(dtype) tensor stores its payload in \(field); expected \(layout.field)")
        }
        let entries = layout.entries(elements: count, byteCount: byteCount)
        let found: Int
        let base: UnsafeRawPointer?
        switch layout.field {
        case "float_data": found = t.n_float_data; base = UnsafeRawPointer(t.float_data)
        case "int32_data": found = t.n_int32_data; base = UnsafeRawPointer(t.int32_data)
        case "int64_data": found = t.n_int64_data; base = UnsafeRawPointer(t.int64_data)
        case "double_data": found = t.n_double_data; base = UnsafeRawPointer(t.double_data)
        default: found = t.n_uint64_data; base = UnsafeRawPointer(t.uint64_data)
        }
        guard found == entries else {
            throw ModelError(.invalidTensor, at: at, "\(field) has \(found) values, expected \(entries) for \(dtype) \(t.n_dims == 0 ? "scalar" : "tensor of \(count) elements")")
        }
        if layout.entryBytes == layout.unitBytes {
            return TensorStorage(borrowing: UnsafeRawBufferPointer(start: base, count: byteCount), owner: owner)
        }
        // Narrowing: each entry holds one storage unit (an element, or a packed byte of sub-byte types).
        return TensorStorage(byteCount: byteCount) { dst in
            guard let src = base else { return }
            for i in 0..<entries {
                switch (layout.entryBytes, layout.unitBytes) {
                case (8, _):  // UINT32 in uint64_data
                    let x = src.load(fromByteOffset: i * 8, as: UInt64.self)
                    dst.storeBytes(of: UInt32(truncatingIfNeeded: x), toByteOffset: i * 4, as: UInt32.self)
                case (_, 2):
                    let x = src.load(fromByteOffset: i * 4, as: Int32.self)
                    dst.storeBytes(of: UInt16(truncatingIfNeeded: x), toByteOffset: i * 2, as: UInt16.self)
                default:
                    dst[i] = UInt8(truncatingIfNeeded: src.load(fromByteOffset: i * 4, as: Int32.self))
                }
            }
        }
    }

    // MARK: Helpers

    func str(_ p: UnsafeMutablePointer<CChar>?) -> String {
        guard let p else { return "" }
        return String(cString: p)
    }

    func bytesOf(_ b: ProtobufCBinaryData) -> [UInt8] {
        Array(UnsafeBufferPointer(start: b.data, count: b.len))
    }

    func unknowns(_ base: ProtobufCMessage) -> UnknownFields {
        guard base.n_unknown_fields > 0, let fields = base.unknown_fields else { return UnknownFields() }
        return UnknownFields((0..<Int(base.n_unknown_fields)).map { i in
            let f = fields[i]
            var data = UnsafeBufferPointer(start: f.data, count: f.len)[...]
            if f.wire_type.rawValue == 2 {
                // protobuf-c keeps the length prefix with the payload (the wire scan checked it).
                while let b = data.first, b & 0x80 != 0 { data = data.dropFirst() }
                data = data.dropFirst()
            }
            return UnknownFields.Field(number: f.tag, wireType: UInt8(f.wire_type.rawValue), data: Array(data))
        })
    }

    /// The wire bytes of the decoded message at `message` (any message type: it starts with its `ProtobufCMessage` header).
    func packed(_ message: UnsafeRawPointer) -> [UInt8] {
        let p = message.assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(p)
        return [UInt8](unsafeUninitializedCapacity: size) { buf, n in
            n = size == 0 ? 0 : protobuf_c_message_pack(p, buf.baseAddress!)
        }
    }
}

/// Which typed `TensorProto` field holds a dtype's payload, and how its entries map to storage.
struct TypedFieldLayout {
    /// The field name (`float_data`, `int32_data`, ...).
    let field: String
    /// Bytes per entry of that field.
    let entryBytes: Int
    /// Bytes of storage one entry stands for (an element, half a complex, or a packed byte).
    let unitBytes: Int
    /// Whether narrowing to int32 entries sign-extends (signed integer types).
    let signed: Bool

    init(_ dtype: DType) {
        switch dtype {
        case .float: (field, entryBytes, unitBytes, signed) = ("float_data", 4, 4, false)
        case .complex64: (field, entryBytes, unitBytes, signed) = ("float_data", 4, 4, false)
        case .int64: (field, entryBytes, unitBytes, signed) = ("int64_data", 8, 8, true)
        case .float64, .complex128: (field, entryBytes, unitBytes, signed) = ("double_data", 8, 8, false)
        case .uint64: (field, entryBytes, unitBytes, signed) = ("uint64_data", 8, 8, false)
        case .uint32: (field, entryBytes, unitBytes, signed) = ("uint64_data", 8, 4, false)
        case .int32: (field, entryBytes, unitBytes, signed) = ("int32_data", 4, 4, true)
        case .int16: (field, entryBytes, unitBytes, signed) = ("int32_data", 4, 2, true)
        case .uint16, .float16, .bfloat16: (field, entryBytes, unitBytes, signed) = ("int32_data", 4, 2, false)
        case .int8: (field, entryBytes, unitBytes, signed) = ("int32_data", 4, 1, true)
        default: (field, entryBytes, unitBytes, signed) = ("int32_data", 4, 1, false)  // 8-bit and packed sub-byte
        }
    }

    /// Entries the field must hold for a tensor of `elements` elements taking `byteCount` bytes.
    func entries(elements: Int, byteCount: Int) -> Int { byteCount / unitBytes }
}

// MARK: - Encoding

/// What writing a model changed relative to the loaded file; empty for a faithful round trip.
public struct SaveReport: Sendable {
    /// One line per change, naming the tensor or field.
    public var notes: [String] = []
    public init() {}
}

/// Memory for C structs built for packing; all freed together.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    /// `count` zeroed values of `T`.
    func alloc<T>(_: T.Type, _ count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A C copy of `s`, or NULL for "" (absent and empty strings read back alike).
    func cstr(_ s: String) -> UnsafeMutablePointer<CChar>? {
        guard !s.isEmpty else { return nil }
        let utf8 = Array(s.utf8)
        let p = alloc(CChar.self, utf8.count + 1)
        utf8.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: utf8.count) }
        return p
    }

    func binary(_ b: [UInt8]) -> ProtobufCBinaryData {
        let p = alloc(UInt8.self, b.count)
        b.withUnsafeBytes { if b.count > 0 { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: b.count) } }
        return ProtobufCBinaryData(len: b.count, data: p)
    }

    /// C copies of `items`, for repeated bytes fields.
    func binaries(_ items: [[UInt8]]) -> (Int, UnsafeMutablePointer<ProtobufCBinaryData>?) {
        guard !items.isEmpty else { return (0, nil) }
        let arr = alloc(ProtobufCBinaryData.self, items.count)
        for (i, b) in items.enumerated() { arr[i] = binary(b) }
        return (items.count, arr)
    }

    /// An array of pointers made by `make` for each element.
    func pointers<E, T>(_ elements: [E], _ make: (E) throws -> UnsafeMutablePointer<T>) rethrows
        -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) {
        guard !elements.isEmpty else { return (0, nil) }
        let arr = alloc(UnsafeMutablePointer<T>?.self, elements.count)
        for (i, e) in elements.enumerated() { arr[i] = try make(e) }
        return (elements.count, arr)
    }

    deinit { for b in blocks { free(b) } }
}

/// Builds protobuf-c structs from the IR and packs them. Tensor payloads are pointed at, not copied.
final class ProtoEncoder {
    private let arena = CArena()
    private var report = SaveReport()
    /// Tensors whose external data were written inline, and the files they came from.
    private var inlined: [String] = [], inlinedFrom: [String] = []

    static func encode(_ model: Model) throws -> ([UInt8], SaveReport) {
        let enc = ProtoEncoder()
        let m = try enc.model(model)
        let bytes = try m.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { try pack($0, what: "model") }
        if !enc.inlined.isEmpty {
            // One note for all of them: a model with external data usually has it for every weight.
            let n = enc.inlined.count, files = Array(NSOrderedSet(array: enc.inlinedFrom)) as? [String] ?? []
            let names = enc.inlined.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (n > 3 ? ", ..." : "")
            enc.report.notes.append("\(n) tensor\(n == 1 ? "" : "s") (\(names)): external data from \(files.map { "'\($0)'" }.joined(separator: ", ")) written inline as raw_data (data_location and external_data dropped)")
        }
        return (bytes, enc.report)
    }

    static func encode(_ tensor: Tensor) throws -> [UInt8] {
        let enc = ProtoEncoder()
        let t = try enc.tensor(tensor)
        return try t.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { try pack($0, what: "tensor") }
    }

    private static func pack(_ msg: UnsafePointer<ProtobufCMessage>, what: String) throws -> [UInt8] {
        let size = protobuf_c_message_get_packed_size(msg)
        guard size <= Int(Int32.max) else {
            throw ModelError(.limitExceeded, at: what, "encodes to \(size) bytes, over protobuf's 2 GiB limit")
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buf, n in
            n = size == 0 ? 0 : protobuf_c_message_pack(msg, buf.baseAddress!)
        }
    }

    private func setUnknowns(_ base: inout ProtobufCMessage, _ u: UnknownFields) {
        guard !u.isEmpty else { return }
        let arr = arena.alloc(ProtobufCMessageUnknownField.self, u.fields.count)
        for (i, f) in u.fields.enumerated() {
            // protobuf-c writes an unknown field's bytes as they are: a delimited one needs its length prefix.
            var payload: [UInt8] = []
            if f.wireType == 2 {
                var n = UInt64(f.data.count)
                while n >= 0x80 { payload.append(UInt8(n & 0x7f) | 0x80); n >>= 7 }
                payload.append(UInt8(n))
            }
            payload += f.data
            let data = arena.binary(payload)
            arr[i] = ProtobufCMessageUnknownField(tag: f.number, wire_type: ProtobufCWireType(rawValue: UInt32(f.wireType)),
                                                  len: data.len, data: data.data)
        }
        base.n_unknown_fields = UInt32(u.fields.count)
        base.unknown_fields = arr
    }

    private func model(_ model: Model) throws -> UnsafeMutablePointer<Scm__ModelProto> {
        let m = arena.alloc(Scm__ModelProto.self)
        scm__model_proto__init(m)
        if model.irVersion != 0 { m.pointee.has_ir_version = 1; m.pointee.ir_version = Int64(model.irVersion) }
        m.pointee.producer_name = arena.cstr(model.producerName)
        m.pointee.producer_version = arena.cstr(model.producerVersion)
        m.pointee.domain = arena.cstr(model.domain)
        if model.modelVersion != 0 { m.pointee.has_model_version = 1; m.pointee.model_version = Int64(model.modelVersion) }
        m.pointee.doc_string = arena.cstr(model.docString)
        m.pointee.graph = try graph(model.graph)
        (m.pointee.n_opset_import, m.pointee.opset_import) = arena.pointers(model.opsetImports) { o in
            let p = arena.alloc(Scm__OperatorSetIdProto.self)
            scm__operator_set_id_proto__init(p)
            // Always present, as onnx.helper writes it ("" = the default domain).
            p.pointee.domain = arena.cstr(o.domain) ?? arena.alloc(CChar.self, 1)
            p.pointee.has_version = 1
            p.pointee.version = Int64(o.version)
            setUnknowns(&p.pointee.base, o.unknownFields)
            return p
        }
        (m.pointee.n_metadata_props, m.pointee.metadata_props) = arena.pointers(model.metadata, entry)
        setUnknowns(&m.pointee.base, model.unknownFields)
        return m
    }

    private func entry(_ e: MetadataEntry) -> UnsafeMutablePointer<Scm__StringStringEntryProto> {
        let p = arena.alloc(Scm__StringStringEntryProto.self)
        scm__string_string_entry_proto__init(p)
        p.pointee.key = arena.cstr(e.key)
        p.pointee.value = arena.cstr(e.value)
        setUnknowns(&p.pointee.base, e.unknownFields)
        return p
    }

    private func graph(_ g: Graph) throws -> UnsafeMutablePointer<Scm__GraphProto> {
        let p = arena.alloc(Scm__GraphProto.self)
        scm__graph_proto__init(p)
        p.pointee.name = arena.cstr(g.name)
        p.pointee.doc_string = arena.cstr(g.docString)
        (p.pointee.n_node, p.pointee.node) = try arena.pointers(g.nodes, node)
        (p.pointee.n_initializer, p.pointee.initializer) = try arena.pointers(g.initializers, tensor)
        (p.pointee.n_input, p.pointee.input) = arena.pointers(g.inputs, valueInfo)
        (p.pointee.n_output, p.pointee.output) = arena.pointers(g.outputs, valueInfo)
        (p.pointee.n_value_info, p.pointee.value_info) = arena.pointers(g.valueInfo, valueInfo)
        setUnknowns(&p.pointee.base, g.unknownFields)
        return p
    }

    private func node(_ n: Node) throws -> UnsafeMutablePointer<Scm__NodeProto> {
        let p = arena.alloc(Scm__NodeProto.self)
        scm__node_proto__init(p)
        (p.pointee.n_input, p.pointee.input) = strings(n.inputs)
        (p.pointee.n_output, p.pointee.output) = strings(n.outputs)
        p.pointee.name = arena.cstr(n.name)
        p.pointee.op_type = arena.cstr(n.opType)
        p.pointee.domain = arena.cstr(n.domain)
        p.pointee.doc_string = arena.cstr(n.docString)
        (p.pointee.n_attribute, p.pointee.attribute) = try arena.pointers(n.attributes, attribute)
        setUnknowns(&p.pointee.base, n.unknownFields)
        return p
    }

    /// Repeated strings: "" must stay present (an omitted optional input), so it is written as an empty C string.
    private func strings(_ s: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !s.isEmpty else { return (0, nil) }
        let arr = arena.alloc(UnsafeMutablePointer<CChar>?.self, s.count)
        for (i, v) in s.enumerated() { arr[i] = arena.cstr(v) ?? arena.alloc(CChar.self, 1) }
        return (s.count, arr)
    }

    private func attribute(_ a: Attribute) throws -> UnsafeMutablePointer<Scm__AttributeProto> {
        let p = arena.alloc(Scm__AttributeProto.self)
        scm__attribute_proto__init(p)
        p.pointee.name = arena.cstr(a.name)
        p.pointee.doc_string = arena.cstr(a.docString)
        p.pointee.ref_attr_name = arena.cstr(a.refAttrName)
        p.pointee.has_type = 1
        p.pointee.type = Scm__AttributeProto__AttributeType(rawValue: UInt32(bitPattern: a.value.typeCode))
        switch a.value {
        case .float(let f): p.pointee.has_f = 1; p.pointee.f = f
        case .int(let i): p.pointee.has_i = 1; p.pointee.i = Int64(i)
        case .string(let s): p.pointee.has_s = 1; p.pointee.s = arena.binary(s)
        case .tensor(let t): p.pointee.t = try tensor(t)
        case .floats(let fs):
            let arr = arena.alloc(Float.self, fs.count)
            for (i, f) in fs.enumerated() { arr[i] = f }
            (p.pointee.n_floats, p.pointee.floats) = (fs.count, arr)
        case .ints(let xs):
            let arr = arena.alloc(Int64.self, xs.count)
            for (i, x) in xs.enumerated() { arr[i] = Int64(x) }
            (p.pointee.n_ints, p.pointee.ints) = (xs.count, arr)
        case .strings(let ss):
            (p.pointee.n_strings, p.pointee.strings) = arena.binaries(ss)
        case .tensors(let ts): (p.pointee.n_tensors, p.pointee.tensors) = try arena.pointers(ts, tensor)
        case .opaque: break  // the value is among the unknown fields
        }
        setUnknowns(&p.pointee.base, a.unknownFields)
        return p
    }

    private func valueInfo(_ v: ValueInfo) -> UnsafeMutablePointer<Scm__ValueInfoProto> {
        let p = arena.alloc(Scm__ValueInfoProto.self)
        scm__value_info_proto__init(p)
        p.pointee.name = arena.cstr(v.name)
        p.pointee.doc_string = arena.cstr(v.docString)
        var extras = v.unknownFields
        if let kept = v.preservedType, kept.parsedAs == v.type {
            // Field 2 (`type`) written as the bytes it was loaded from: nothing of it is lost.
            extras.fields.append(UnknownFields.Field(number: 2, wireType: 2, data: kept.bytes))
        } else if let t = v.type {
            let tp = arena.alloc(Scm__TypeProto.self)
            scm__type_proto__init(tp)
            let tt = arena.alloc(Scm__TypeProto__Tensor.self)
            scm__type_proto__tensor__init(tt)
            if let e = t.elementType { tt.pointee.has_elem_type = 1; tt.pointee.elem_type = e.rawValue }
            if let shape = t.shape {
                let sp = arena.alloc(Scm__TensorShapeProto.self)
                scm__tensor_shape_proto__init(sp)
                (sp.pointee.n_dim, sp.pointee.dim) = arena.pointers(shape) { d in
                    let dp = arena.alloc(Scm__TensorShapeProto__Dimension.self)
                    scm__tensor_shape_proto__dimension__init(dp)
                    switch d {
                    case .value(let n):
                        dp.pointee.value_case = SCM__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        dp.pointee.dim_value = Int64(n)
                    case .param(let s):
                        dp.pointee.value_case = SCM__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        dp.pointee.dim_param = arena.cstr(s) ?? arena.alloc(CChar.self, 1)
                    case .unknown: break
                    }
                    return dp
                }
                tt.pointee.shape = sp
            }
            tp.pointee.value_case = SCM__TYPE_PROTO__VALUE_TENSOR_TYPE
            tp.pointee.tensor_type = tt
            p.pointee.type = tp
        }
        setUnknowns(&p.pointee.base, extras)
        return p
    }

    private func tensor(_ t: Tensor) throws -> UnsafeMutablePointer<Scm__TensorProto> {
        let p = arena.alloc(Scm__TensorProto.self)
        scm__tensor_proto__init(p)
        let dims = arena.alloc(Int64.self, t.shape.count)
        for (i, d) in t.shape.enumerated() { dims[i] = Int64(d) }
        (p.pointee.n_dims, p.pointee.dims) = (t.shape.count, t.shape.isEmpty ? nil : dims)
        p.pointee.has_data_type = 1
        p.pointee.data_type = t.dtype.rawValue
        p.pointee.name = arena.cstr(t.meta.name)
        p.pointee.doc_string = arena.cstr(t.meta.docString)
        setUnknowns(&p.pointee.base, t.meta.unknownFields)
        switch t.data {
        case .strings(let ss):
            (p.pointee.n_string_data, p.pointee.string_data) = arena.binaries(ss)
        case .bytes(let storage):
            let bytes = storage.bytes
            switch t.meta.encoding {
            case .typedField:
                typedPayload(p, dtype: t.dtype, bytes: bytes)
            case .external(let location, _, _):
                inlined.append(t.meta.name)
                inlinedFrom.append(location)
                fallthrough
            case .rawData:
                if bytes.count > 0 {
                    p.pointee.has_raw_data = 1
                    p.pointee.raw_data = ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)))
                }
            }
        }
        return p
    }

    /// Fills the typed field ONNX assigns to `dtype`: pointing at the payload where the layouts
    /// match, widening each storage unit to the field's entry type otherwise.
    private func typedPayload(_ p: UnsafeMutablePointer<Scm__TensorProto>, dtype: DType, bytes: UnsafeRawBufferPointer) {
        let layout = TypedFieldLayout(dtype)
        let n = bytes.count / layout.unitBytes
        guard n > 0, let base = bytes.baseAddress else { return }
        let same = UnsafeMutableRawPointer(mutating: base)
        switch layout.field {
        case "float_data": (p.pointee.n_float_data, p.pointee.float_data) = (n, same.assumingMemoryBound(to: Float.self))
        case "int64_data": (p.pointee.n_int64_data, p.pointee.int64_data) = (n, same.assumingMemoryBound(to: Int64.self))
        case "double_data": (p.pointee.n_double_data, p.pointee.double_data) = (n, same.assumingMemoryBound(to: Double.self))
        case "uint64_data":
            if layout.unitBytes == 8 {
                (p.pointee.n_uint64_data, p.pointee.uint64_data) = (n, same.assumingMemoryBound(to: UInt64.self))
            } else {
                let arr = arena.alloc(UInt64.self, n)
                for i in 0..<n { arr[i] = UInt64(base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
                (p.pointee.n_uint64_data, p.pointee.uint64_data) = (n, arr)
            }
        default:
            if layout.unitBytes == 4 {
                (p.pointee.n_int32_data, p.pointee.int32_data) = (n, same.assumingMemoryBound(to: Int32.self))
                return
            }
            let arr = arena.alloc(Int32.self, n)
            for i in 0..<n {
                switch (layout.unitBytes, layout.signed) {
                case (2, true): arr[i] = Int32(base.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
                case (2, false): arr[i] = Int32(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                case (_, true): arr[i] = Int32(base.load(fromByteOffset: i, as: Int8.self))
                default: arr[i] = Int32(base.load(fromByteOffset: i, as: UInt8.self))
                }
            }
            (p.pointee.n_int32_data, p.pointee.int32_data) = (n, arr)
        }
    }
}
