/// The messages of `schemas/model.proto`, for the pre-scan.
enum WireMessage: String {
    case model = "ModelProto", graph = "GraphProto", node = "NodeProto", attribute = "AttributeProto"
    case tensor = "TensorProto", valueInfo = "ValueInfoProto", type = "TypeProto"
    case typeTensor = "TypeProto.Tensor", shape = "TensorShapeProto", dim = "TensorShapeProto.Dimension"
    case opset = "OperatorSetIdProto", entry = "StringStringEntryProto"

    enum Kind {
        case varint, fixed32, fixed64, string, bytes
        case message(WireMessage)
    }

    struct Field {
        let name: String
        let kind: Kind
        let repeated: Bool
    }

    /// The field of this message with `number`, as our schema declares it; `nil` for unknown fields.
    func field(_ number: UInt32) -> Field? {
        func f(_ name: String, _ kind: Kind, repeated: Bool = false) -> Field {
            Field(name: name, kind: kind, repeated: repeated)
        }
        switch (self, number) {
        case (.model, 1): return f("ir_version", .varint)
        case (.model, 2): return f("producer_name", .string)
        case (.model, 3): return f("producer_version", .string)
        case (.model, 4): return f("domain", .string)
        case (.model, 5): return f("model_version", .varint)
        case (.model, 6): return f("doc_string", .string)
        case (.model, 7): return f("graph", .message(.graph))
        case (.model, 8): return f("opset_import", .message(.opset), repeated: true)
        case (.model, 14): return f("metadata_props", .message(.entry), repeated: true)
        case (.graph, 1): return f("node", .message(.node), repeated: true)
        case (.graph, 2): return f("name", .string)
        case (.graph, 5): return f("initializer", .message(.tensor), repeated: true)
        case (.graph, 10): return f("doc_string", .string)
        case (.graph, 11): return f("input", .message(.valueInfo), repeated: true)
        case (.graph, 12): return f("output", .message(.valueInfo), repeated: true)
        case (.graph, 13): return f("value_info", .message(.valueInfo), repeated: true)
        case (.node, 1): return f("input", .string, repeated: true)
        case (.node, 2): return f("output", .string, repeated: true)
        case (.node, 3): return f("name", .string)
        case (.node, 4): return f("op_type", .string)
        case (.node, 5): return f("attribute", .message(.attribute), repeated: true)
        case (.node, 6): return f("doc_string", .string)
        case (.node, 7): return f("domain", .string)
        case (.attribute, 1): return f("name", .string)
        case (.attribute, 2): return f("f", .fixed32)
        case (.attribute, 3): return f("i", .varint)
        case (.attribute, 4): return f("s", .bytes)
        case (.attribute, 5): return f("t", .message(.tensor))
        case (.attribute, 7): return f("floats", .fixed32, repeated: true)
        case (.attribute, 8): return f("ints", .varint, repeated: true)
        case (.attribute, 9): return f("strings", .bytes, repeated: true)
        case (.attribute, 10): return f("tensors", .message(.tensor), repeated: true)
        case (.attribute, 13): return f("doc_string", .string)
        case (.attribute, 20): return f("type", .varint)
        case (.attribute, 21): return f("ref_attr_name", .string)
        case (.tensor, 1): return f("dims", .varint, repeated: true)
        case (.tensor, 2): return f("data_type", .varint)
        case (.tensor, 4): return f("float_data", .fixed32, repeated: true)
        case (.tensor, 5): return f("int32_data", .varint, repeated: true)
        case (.tensor, 6): return f("string_data", .bytes, repeated: true)
        case (.tensor, 7): return f("int64_data", .varint, repeated: true)
        case (.tensor, 8): return f("name", .string)
        case (.tensor, 9): return f("raw_data", .bytes)
        case (.tensor, 10): return f("double_data", .fixed64, repeated: true)
        case (.tensor, 11): return f("uint64_data", .varint, repeated: true)
        case (.tensor, 12): return f("doc_string", .string)
        case (.tensor, 13): return f("external_data", .message(.entry), repeated: true)
        case (.tensor, 14): return f("data_location", .varint)
        case (.valueInfo, 1): return f("name", .string)
        case (.valueInfo, 2): return f("type", .message(.type))
        case (.valueInfo, 3): return f("doc_string", .string)
        case (.type, 1): return f("tensor_type", .message(.typeTensor))
        case (.type, 6): return f("denotation", .string)
        case (.typeTensor, 1): return f("elem_type", .varint)
        case (.typeTensor, 2): return f("shape", .message(.shape))
        case (.shape, 1): return f("dim", .message(.dim), repeated: true)
        case (.dim, 1): return f("dim_value", .varint)
        case (.dim, 2): return f("dim_param", .string)
        case (.dim, 3): return f("denotation", .string)
        case (.opset, 1): return f("domain", .string)
        case (.opset, 2): return f("version", .varint)
        case (.entry, 1): return f("key", .string)
        case (.entry, 2): return f("value", .string)
        default: return nil
        }
    }
}

/// A pass over protobuf wire bytes that checks them against our schema before protobuf-c sees them.
///
/// protobuf-c returns NULL without a reason on bad input, has no limits of its own, and keeps C
/// strings (so an embedded NUL would silently truncate). This scan finds the first problem with its
/// byte offset and field path (`ModelProto.graph.node[3].attribute[0]`), enforces `LoadLimits`, and
/// checks every `string` field is UTF-8 without NUL bytes. It is linear in the file size, and its
/// recursion depth is bounded by the schema (unknown fields are skipped, not parsed).
struct WireScan {
    let bytes: UnsafeRawBufferPointer
    let limits: LoadLimits
    let source: String
    private(set) var nodeCount = 0

    init(bytes: UnsafeRawBufferPointer, limits: LoadLimits, source: String) {
        self.bytes = bytes
        self.limits = limits
        self.source = source
    }

    /// One step of the path to the current position, for error messages.
    private struct Step {
        let message: WireMessage
        var field: String = ""
        var index: Int? = nil
    }
    private var path: [Step] = []

    private func location(_ offset: Int) -> String {
        var p = path.first.map { $0.message.rawValue } ?? ""
        for s in path where !s.field.isEmpty {
            p += "." + s.field
            if let i = s.index { p += "[\(i)]" }
        }
        return "\(source): byte \(offset) in \(p)"
    }

    private func fail(_ offset: Int, _ message: String, kind: ModelError.Kind = .malformedProtobuf) -> ModelError {
        ModelError(kind, at: location(offset), message)
    }

    /// Scans the whole buffer as one `root` message.
    mutating func scan(as root: WireMessage) throws {
        path = [Step(message: root)]
        try scanMessage(root, from: 0, to: bytes.count)
    }

    private func readVarint(_ pos: inout Int, end: Int) throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = pos
        while true {
            guard pos < end else { throw fail(start, "truncated varint") }
            let b = bytes[pos]
            pos += 1
            if shift == 63 && b > 1 { throw fail(start, "varint overflows 64 bits") }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw fail(start, "varint longer than 10 bytes") }
        }
    }

    private mutating func scanMessage(_ message: WireMessage, from start: Int, to end: Int) throws {
        var pos = start
        var counts = [Int](repeating: 0, count: 22)
        while pos < end {
            let tagStart = pos
            let tag = try readVarint(&pos, end: end)
            guard pos - tagStart <= 5, tag <= UInt64(UInt32.max) else { throw fail(tagStart, "invalid field tag") }
            let number = UInt32(tag >> 3)
            let wire = UInt8(tag & 7)
            path[path.count - 1].field = ""
            path[path.count - 1].index = nil
            guard number >= 1 else { throw fail(tagStart, "field number 0 is invalid") }
            let field = message.field(number)
            let index = field == nil ? 0 : counts[Int(number)]
            // Errors from here on name this field (with its index when repeated and not packed).
            path[path.count - 1].field = field?.name ?? "<field \(number)>"
            let indexed = field.map { $0.repeated && (wire != 2 || isMessageOrBytes($0)) } ?? false
            path[path.count - 1].index = indexed ? index : nil
            // The payload of this field.
            var payloadStart = pos
            var payloadEnd = pos
            switch wire {
            case 0: _ = try readVarint(&pos, end: end); payloadEnd = pos
            case 1:
                guard end - pos >= 8 else { throw fail(tagStart, "truncated 64-bit field \(number)") }
                pos += 8; payloadEnd = pos
            case 5:
                guard end - pos >= 4 else { throw fail(tagStart, "truncated 32-bit field \(number)") }
                pos += 4; payloadEnd = pos
            case 2:
                let len = try readVarint(&pos, end: end)
                guard len <= UInt64(Int32.max) else {
                    throw fail(tagStart, "field \(number) declares \(len) bytes, over protobuf's 2 GiB limit")
                }
                guard Int(len) <= end - pos else {
                    throw fail(tagStart, "field \(number) declares \(len) bytes but only \(end - pos) remain (truncated file?)")
                }
                payloadStart = pos
                pos += Int(len)
                payloadEnd = pos
            case 3, 4: throw fail(tagStart, "field \(number) uses protobuf groups (wire type \(wire)), which are not supported")
            default: throw fail(tagStart, "field \(number) has invalid wire type \(wire)")
            }
            guard let field else { continue }  // unknown: kept, not parsed
            counts[Int(number)] += 1
            try checkField(field, message: message, wire: wire, tagStart: tagStart,
                           payload: payloadStart..<payloadEnd, repeatIndex: index)
        }
        guard pos == end else { throw fail(end, "message overruns its declared length") }
        path[path.count - 1].field = ""
        path[path.count - 1].index = nil
    }

    private func isMessageOrBytes(_ f: WireMessage.Field) -> Bool {
        switch f.kind {
        case .message, .string, .bytes: true
        default: false
        }
    }

    private mutating func checkField(_ field: WireMessage.Field, message: WireMessage, wire: UInt8, tagStart: Int,
                                     payload: Range<Int>, repeatIndex: Int) throws {
        func expect(_ w: UInt8, _ what: String) throws {
            guard wire == w else { throw fail(tagStart, "\(field.name) must be \(what) (wire type \(w)), found wire type \(wire)") }
        }
        switch field.kind {
        case .varint, .fixed32, .fixed64:
            let native: UInt8
            switch field.kind {
            case .varint: native = 0
            case .fixed32: native = 5
            default: native = 1
            }
            if wire == 2 && field.repeated {
                try checkPacked(field, native: native, payload: payload)
            } else {
                try expect(native, "a scalar")
            }
            if message == .tensor && field.name == "dims" {
                // dims counts are capped here; packed dims are counted in checkPacked.
                if repeatIndex + 1 > limits.maxRank {
                    throw fail(tagStart, "tensor has more than \(limits.maxRank) dims", kind: .limitExceeded)
                }
            }
        case .string:
            try expect(2, "length-delimited")
            let s = UnsafeRawBufferPointer(rebasing: bytes[payload])
            if s.contains(0) { throw fail(payload.lowerBound, "\(field.name) contains a NUL byte") }
            if !isValidUTF8(s) { throw fail(payload.lowerBound, "\(field.name) is not valid UTF-8") }
        case .bytes:
            try expect(2, "length-delimited")
        case .message(let sub):
            try expect(2, "a message")
            if message == .graph && field.name == "node" {
                nodeCount += 1
                if nodeCount > limits.maxNodes {
                    throw fail(tagStart, "graph has more than \(limits.maxNodes) nodes", kind: .limitExceeded)
                }
            }
            if message == .shape && repeatIndex + 1 > limits.maxRank {
                throw fail(tagStart, "shape has more than \(limits.maxRank) dims", kind: .limitExceeded)
            }
            path.append(Step(message: sub))
            try scanMessage(sub, from: payload.lowerBound, to: payload.upperBound)
            path.removeLast()
        }
    }

    private func checkPacked(_ field: WireMessage.Field, native: UInt8, payload: Range<Int>) throws {
        let n = payload.count
        switch native {
        case 5 where n % 4 != 0, 1 where n % 8 != 0:
            throw fail(payload.lowerBound, "packed \(field.name) has \(n) bytes, not a multiple of \(native == 5 ? 4 : 8)")
        case 0:
            var p = payload.lowerBound
            var count = 0
            while p < payload.upperBound {
                _ = try readVarint(&p, end: payload.upperBound)
                count += 1
            }
            if field.name == "dims" && count > limits.maxRank {
                throw fail(payload.lowerBound, "tensor has more than \(limits.maxRank) dims", kind: .limitExceeded)
            }
        default: break
        }
    }
}

/// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
func isValidUTF8(_ s: UnsafeRawBufferPointer) -> Bool {
    var i = 0
    let n = s.count
    while i < n {
        let b0 = s[i]
        if b0 < 0x80 { i += 1; continue }
        let len: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: len = 2
        case 0xE0: len = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: len = 3
        case 0xED: len = 3; hi = 0x9F
        case 0xF0: len = 4; lo = 0x90
        case 0xF1...0xF3: len = 4
        case 0xF4: len = 4; hi = 0x8F
        default: return false
        }
        guard i + len <= n else { return false }
        let b1 = s[i + 1]
        guard b1 >= lo && b1 <= hi else { return false }
        for k in 2..<len where s[i + k] & 0xC0 != 0x80 { return false }
        i += len
    }
    return true
}
