import Foundation

/// One JSON value of a request body, read strictly (RFC 8259): a key given twice in an object is
/// an error rather than one of the two silently winning, and numbers keep their text, so integers
/// are read as integers over their whole range (a seed up to 2^64 - 1), never through a Double.
indirect enum JSONValue: CustomStringConvertible, Sendable {
    case null, bool(Bool), number(String), string(String), array([JSONValue]), object([String: JSONValue])

    /// Why a body is not a JSON value, and where.
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    /// A key that an object of the body gives twice.
    struct DuplicateKey: Error {
        let key: String
    }

    /// The value `bytes` hold (with nothing but white space around it).
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var reader = Reader(bytes: bytes)
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.at == bytes.count else { throw reader.malformed("unexpected text after the value") }
        return value
    }

    /// The number as an integer, when its text is one, or a float with an integral value that a
    /// Double holds exactly ("2.0", "1e3").
    var integer: (negative: Bool, magnitude: UInt64)? {
        guard case .number(let text) = self else { return nil }
        let negative = text.hasPrefix("-")
        if let m = UInt64(negative ? String(text.dropFirst()) : text) { return (negative && m != 0, m) }
        guard let d = Double(text), d.isFinite, d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else { return nil }
        return (d < 0, UInt64(abs(d)))
    }

    /// As the error messages show it: a boolean named as one, a string quoted, a container by kind.
    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "a boolean (\(b))"
        case .number(let text): return text
        case .string(let s): return "\"\(s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The reading position over the body's bytes.
    struct Reader {
        let bytes: [UInt8]
        var at = 0
        static let maxDepth = 64

        func malformed(_ what: String) -> Malformed { Malformed(description: "\(what) at byte \(at)") }

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < Self.maxDepth else { throw malformed("nesting deeper than \(Self.maxDepth) levels") }
            guard at < bytes.count else { throw malformed("the body ends where a value should start") }
            switch bytes[at] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func literal(_ word: String) throws {
            let w = Array(word.utf8)
            guard bytes.count - at >= w.count, Array(bytes[at..<at + w.count]) == w else { throw malformed("not a JSON value") }
            at += w.count
        }

        mutating func expect(_ c: Character) throws {
            skipSpace()
            guard at < bytes.count, bytes[at] == c.asciiValue else { throw malformed("'\(c)' expected") }
            at += 1
        }

        mutating func object(depth: Int) throws -> JSONValue {
            at += 1
            var members: [String: JSONValue] = [:]
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
            while true {
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw malformed("a key (a string) expected") }
                let key = try string()
                try expect(":")
                skipSpace()
                let v = try value(depth: depth + 1)
                guard members.updateValue(v, forKey: key) == nil else { throw DuplicateKey(key: key) }
                skipSpace()
                guard at < bytes.count else { throw malformed("the body ends inside an object") }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
                try expect(",")
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            at += 1
            var items: [JSONValue] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard at < bytes.count else { throw malformed("the body ends inside an array") }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
                try expect(",")
            }
        }

        /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, finite as a Double.
        mutating func number() throws -> String {
            let start = at
            func digits() -> Int {
                let s = at
                while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                return at - s
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
            let intStart = at
            guard digits() > 0 else { at = start; throw malformed("not a JSON value") }
            guard bytes[intStart] != UInt8(ascii: "0") || at - intStart == 1 else { throw malformed("a number with a leading zero") }
            if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
                at += 1
                guard digits() > 0 else { throw malformed("a digit expected after '.'") }
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
                at += 1
                if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw malformed("a digit expected in the exponent") }
            }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            guard let d = Double(text), d.isFinite else { at = start; throw malformed("the number \(text) is out of range") }
            return text
        }

        mutating func string() throws -> String {
            at += 1
            var out: [UInt8] = []
            while at < bytes.count {
                let c = bytes[at]
                at += 1
                switch c {
                case UInt8(ascii: "\""):
                    guard let s = String(validating: out, as: UTF8.self) else { throw malformed("a string that is not UTF-8") }
                    return s
                case UInt8(ascii: "\\"): try escape(into: &out)
                case 0..<0x20: throw malformed("a control character in a string")
                default: out.append(c)
                }
            }
            throw malformed("the body ends inside a string")
        }

        mutating func escape(into out: inout [UInt8]) throws {
            guard at < bytes.count else { throw malformed("the body ends inside a string") }
            let c = bytes[at]
            at += 1
            let simple: [UInt8: UInt8] = [UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
                                          UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09]
            if let s = simple[c] { out.append(s); return }
            guard c == UInt8(ascii: "u") else { throw malformed("an unknown escape in a string") }
            var scalar = try hex4()
            if (0xD800..<0xDC00).contains(scalar) {
                guard bytes.count - at >= 6, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else { throw malformed("a lone surrogate in a string") }
                at += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw malformed("a lone surrogate in a string") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let u = Unicode.Scalar(scalar) else { throw malformed("a lone surrogate in a string") }
            out += Array(String(Character(u)).utf8)
        }

        mutating func hex4() throws -> UInt32 {
            let text = bytes.count - at >= 4 ? String(decoding: bytes[at..<at + 4], as: UTF8.self) : ""
            guard text.count == 4, text.allSatisfy(\.isHexDigit), let v = UInt32(text, radix: 16) else {
                throw malformed("a \\u escape needs four hex digits")
            }
            at += 4
            return v
        }
    }
}
