import Foundation
import SCMGraph

/// NumPy's `.npy` format (version 1.0 to 3.0) for float arrays: what `--npy` writes and
/// `--noise` reads, so samples and noise move to and from NumPy unchanged.
public enum NPY {
    /// Files larger than this are refused before they are read (4 GiB).
    public static let maxFileBytes = 1 << 32

    /// The `.npy` encoding of `values` with `shape` (C order, little-endian float32, format 1.0).
    public static func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int]) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64,
        // ending in a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xff), UInt8(n >> 8)]
        out += Array(header.utf8)
        let start = out.count
        out += repeatElement(0, count: values.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() {
                raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: start + 4 * i, as: UInt32.self)
            }
        }
        return out
    }

    /// Writes `values` with `shape` to `path` atomically (temporary file, then rename).
    public static func write(_ values: [Float], shape: [Int], to path: String) throws(SamplerError) {
        let bytes = values.withUnsafeBufferPointer { encode($0, shape: shape) }
        try SamplerError.wrap { try ModelFile.writeAtomically(bytes, to: path) }
    }

    /// Reads a float32 (`<f4`) or float64 (`<f8`, rounded to float32) array in C order.
    /// Returns the shape and the values; anything else is an error naming the file and what is
    /// wrong.
    public static func read(path: String) throws(SamplerError) -> (shape: [Int], values: [Float]) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw SamplerError(.io, at: path, "cannot open for reading (\(FileManager.default.fileExists(atPath: path) ? "permission denied or not a file" : "no such file"))")
        }
        defer { try? handle.close() }
        let size: UInt64
        do { size = try handle.seekToEnd(); try handle.seek(toOffset: 0) } catch {
            throw SamplerError(.io, at: path, "cannot read: \(ModelFile.reason(error))")
        }
        guard size <= UInt64(maxFileBytes) else { throw SamplerError(.io, at: path, "is \(size) bytes, more than the \(maxFileBytes)-byte limit") }
        let data: Data
        do { data = try handle.readToEnd() ?? Data() } catch {
            throw SamplerError(.io, at: path, "cannot read: \(ModelFile.reason(error))")
        }
        return try decode([UInt8](data), source: path)
    }

    /// Decodes the bytes of an `.npy` file (see `read(path:)`); errors name `source`.
    public static func decode(_ bytes: [UInt8], source: String = "npy") throws(SamplerError) -> (shape: [Int], values: [Float]) {
        func bad(_ m: String) -> SamplerError { SamplerError(.invalidArgument, at: source, "not a usable .npy file: \(m)") }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw bad("the magic string \\x93NUMPY is missing")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw bad("format version \(major) is not 1, 2 or 3")
        }
        guard headerLength <= 1 << 20, headerStart + headerLength <= bytes.count else { throw bad("truncated header") }
        guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw bad("the header is not text")
        }
        let descr = try field("descr", in: header, source: source)
        let elementSize: Int
        switch descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) {
        case "<f4": elementSize = 4
        case "<f8": elementSize = 8
        default: throw bad("dtype \(descr) is not float32 ('<f4') or float64 ('<f8')")
        }
        guard try field("fortran_order", in: header, source: source) == "False" else {
            throw bad("Fortran-ordered arrays are not supported (save with np.ascontiguousarray)")
        }
        let shapeText = try field("shape", in: header, source: source)
        guard shapeText.hasPrefix("("), shapeText.hasSuffix(")") else { throw bad("shape \(shapeText) is not a tuple") }
        var shape: [Int] = []
        for part in shapeText.dropFirst().dropLast().split(separator: ",") {
            let p = part.trimmingCharacters(in: .whitespaces)
            if p.isEmpty { continue }
            guard let d = Int(p), d >= 0, d <= 1 << 40 else { throw bad("shape \(shapeText) has a bad size '\(p)'") }
            shape.append(d)
        }
        var count = 1
        for d in shape {
            let (c, o) = count.multipliedReportingOverflow(by: d)
            guard !o, c <= NPY.maxFileBytes else { throw bad("shape \(shapeText) is too large") }
            count = c
        }
        let dataStart = headerStart + headerLength
        guard bytes.count - dataStart == count * elementSize else {
            throw bad("shape \(shapeText) needs \(count * elementSize) data bytes, the file has \(bytes.count - dataStart)")
        }
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart
            for i in 0..<count {
                if elementSize == 4 {
                    values[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                } else {
                    values[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                }
            }
        }
        return (shape, values)
    }

    /// The text of `key`'s value in the header dictionary (a quoted string, a word or a tuple).
    private static func field(_ key: String, in header: String, source: String) throws(SamplerError) -> String {
        guard let k = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\""),
              let colon = header[k.upperBound...].firstIndex(of: ":") else {
            throw SamplerError(.invalidArgument, at: source, "not a usable .npy file: the header has no '\(key)'")
        }
        let rest = header[header.index(after: colon)...].drop(while: { $0 == " " })
        let end: String.Index
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else {
                throw SamplerError(.invalidArgument, at: source, "not a usable .npy file: '\(key)' has no closing parenthesis")
            }
            end = rest.index(after: close)
        } else if let q = rest.first, q == "'" || q == "\"" {
            guard let close = rest.dropFirst().firstIndex(of: q) else {
                throw SamplerError(.invalidArgument, at: source, "not a usable .npy file: '\(key)' has no closing quote")
            }
            end = rest.index(after: close)
        } else {
            end = rest.firstIndex(where: { $0 == "," || $0 == "}" }) ?? rest.endIndex
        }
        return String(rest[..<end]).trimmingCharacters(in: .whitespaces)
    }
}
