import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing model files and TensorProto files.
///
/// Loading never trusts the file: sizes are checked before anything is mapped, the wire bytes are
/// scanned against the schema and `LoadLimits` before protobuf-c decodes them, tensor payloads are
/// checked against their dims and dtype, and (unless `verify` is false) the graph is verified.
/// Writing goes to a temporary file in the destination folder that is renamed into place, so a
/// failed write never leaves a partial file.
public enum ModelFile {
    /// Loads and verifies the model at `path`. External data is resolved inside the model's folder.
    public static func load(path: String, limits: LoadLimits = LoadLimits(), verify: Bool = true) throws -> Model {
        let file = try MappedFile(path: path, maxBytes: limits.maxFileBytes)
        let dir = (path as NSString).deletingLastPathComponent
        let reader = ExternalDataReader(directory: dir.isEmpty ? "." : dir,
                                        limit: min(limits.maxExternalBytes, limits.maxInitializerBytes))
        return try naming(path) {
            if let what = notAModel(file.bytes) { throw ModelError(.invalidModel, at: "", what) }
            let model = try ProtoDecoder.decodeModel(bytes: file.bytes, limits: limits, source: path, externalData: reader)
            if verify { try model.verify() }
            try model.checkResources(limits)
            return model
        }
    }

    /// Runs `body`, prefixing the location of a `ModelError` it throws with `source` when missing.
    static func naming<R>(_ source: String, _ body: () throws -> R) throws -> R {
        do { return try body() } catch var e as ModelError {
            if !e.location.hasPrefix(source) { e.location = e.location.isEmpty ? source : "\(source): \(e.location)" }
            throw e
        }
    }

    /// Loads a model from bytes in memory. External data is refused (there is no folder to resolve it in).
    public static func load(bytes: [UInt8], source: String = "<memory>", limits: LoadLimits = LoadLimits(),
                            verify: Bool = true) throws -> Model {
        guard bytes.count <= limits.maxFileBytes else {
            throw ModelError(.limitExceeded, at: source, "model is \(bytes.count) bytes, over the limit of \(limits.maxFileBytes)")
        }
        return try naming(source) {
            let model = try bytes.withUnsafeBytes {
                if let what = notAModel($0) { throw ModelError(.invalidModel, at: "", what) }
                return try ProtoDecoder.decodeModel(bytes: $0, limits: limits, source: source, externalData: nil)
            }
            if verify { try model.verify() }
            try model.checkResources(limits)
            return model
        }
    }

    /// The protobuf bytes of `model` and what the encoding changed (see `SaveReport`).
    public static func serialize(_ model: Model) throws -> (bytes: [UInt8], report: SaveReport) {
        try ProtoEncoder.encode(model)
    }

    /// Writes `model` to `path` atomically and returns what the encoding changed.
    @discardableResult
    public static func save(_ model: Model, to path: String) throws -> SaveReport {
        let (bytes, report) = try serialize(model)
        try writeAtomically(bytes, to: path)
        return report
    }

    /// Loads a `TensorProto` file (the format of ONNX test data sets).
    public static func loadTensor(path: String, limits: LoadLimits = LoadLimits()) throws -> Tensor {
        let file = try MappedFile(path: path, maxBytes: limits.maxFileBytes)
        return try naming(path) {
            if let what = notA("an ONNX TensorProto file (onnx.numpy_helper.from_array(a).SerializeToString() writes one)", file.bytes) {
                throw ModelError(.badInput, at: "", what)
            }
            let t = try ProtoDecoder.decodeTensor(bytes: file.bytes, limits: limits, source: path)
            guard t.elementCount <= limits.maxTensorElements else {
                throw ModelError(.limitExceeded, at: path, "tensor has \(t.elementCount) elements, more than the limit of \(limits.maxTensorElements) (max-tensor-elements)")
            }
            return t
        }
    }

    /// Writes `tensor` as a `TensorProto` file, atomically.
    public static func saveTensor(_ tensor: Tensor, to path: String) throws {
        try writeAtomically(try ProtoEncoder.encode(tensor), to: path)
    }

    /// Writes several tensors as TensorProto files, all or none (`writeAllAtomically`).
    public static func saveTensors(_ tensors: [(path: String, tensor: Tensor)], creatingFolder folder: String? = nil) throws {
        try writeAllAtomically(try tensors.map { ($0.path, try ProtoEncoder.encode($0.tensor)) }, creatingFolder: folder)
    }

    /// Writes `bytes` to a temporary file beside `path`, flushes it, and renames it over `path`.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try writeAllAtomically([(path, bytes)])
    }

    /// Writes several files so that either every destination is replaced or none is touched:
    /// the destinations are checked (distinct, not folders), each file is written to a temporary
    /// name beside its destination and flushed, and only when all are written are they renamed
    /// into place. A failed write removes the temporary files and leaves the destinations as they
    /// were. (Only a rename failing after others succeeded, such as a destination turned into a
    /// folder meanwhile, can leave part of the set renamed; the temporary files are still removed.)
    ///
    /// `creatingFolder`: a folder the files go into, created (with its missing parents) just
    /// before they are written; a failure or an interruption removes what was created.
    public static func writeAllAtomically(_ files: [(path: String, bytes: [UInt8])], creatingFolder folder: String? = nil) throws {
        var created: [String] = []
        defer { for f in created.reversed() { rmdir(f); TemporaryFiles.removeFolder(f) } }
        if let folder { created = try createFolder(folder) }
        try writeFiles(files)
        for f in created { TemporaryFiles.removeFolder(f) }
        created = []
    }

    /// Creates `folder` and its missing parents (an existing folder is fine); the error says why
    /// in the system's words (`No such file or directory`, `Not a directory`, ...).
    public static func makeFolders(_ folder: String) throws {
        let missing = missingFolders(folder).missing
        var st = stat()
        if missing.isEmpty, stat(folder, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR { throw ModelError(.io, at: folder, "exists and is not a folder") }
        for dir in missing where mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw ModelError(.io, at: folder, "cannot create the folder '\(dir)': \(errnoString())")
        }
    }

    /// The folders of `path` (itself included) that do not exist yet, outermost first, and the
    /// nearest one that does ("." for a relative path none of whose folders exists).
    public static func missingFolders(_ path: String) -> (missing: [String], existing: String) {
        var missing: [String] = []
        var p = path
        var st = stat()
        while !p.isEmpty, p != "/", stat(p, &st) != 0 {
            missing.insert(p, at: 0)
            p = parentFolder(of: p)
        }
        return (missing, p.isEmpty ? "." : p)
    }

    /// nil when the folder `path`, which does not exist, can be created: its nearest existing
    /// ancestor is a writable folder; else that ancestor.
    public static func uncreatableAncestor(of path: String) -> String? {
        let ancestor = missingFolders(path).existing
        var st = stat()
        return stat(ancestor, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR && access(ancestor, W_OK) == 0 ? nil : ancestor
    }

    /// The files of folder `dir` named `<prefix><number><suffix>` (at least `minDigits` digits),
    /// with their numbers; none when the folder cannot be listed. For telling the numbered
    /// outputs of an earlier run apart from this one's.
    public static func numberedFiles(in dir: String, prefix: String, suffix: String, minDigits: Int = 1) -> [(name: String, number: Int)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name in
            guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.count > prefix.count + suffix.count else { return nil }
            let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
            guard digits.count >= minDigits, digits.allSatisfy({ ("0"..."9").contains($0) }), let n = Int(digits) else { return nil }
            return (name, n)
        }
    }

    /// What went wrong in a Foundation file error, in the system's words where it wraps one
    /// (Foundation's own text on Linux is 'The operation could not be completed').
    public static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or folder"
            case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
            case NSFileWriteFileExistsError: return "a file is in the way"
            default: break
            }
        }
        return ns.localizedDescription
    }

    /// Creates `folder` and its missing parents, each registered with `TemporaryFiles` before it
    /// exists; returns the folders created, outermost first.
    private static func createFolder(_ folder: String) throws -> [String] {
        var created: [String] = []
        for dir in missingFolders(folder).missing {
            TemporaryFiles.addFolder(dir)
            guard mkdir(dir, 0o755) == 0 else {
                TemporaryFiles.removeFolder(dir)
                for f in created.reversed() { rmdir(f); TemporaryFiles.removeFolder(f) }
                throw ModelError(.io, at: folder, "cannot create the output folder '\(dir)': \(errnoString())")
            }
            created.append(dir)
        }
        return created
    }

    /// The folder part of `path` ("" for a bare name, "/" for a name in the root), computed on
    /// the text alone (trailing slashes ignored).
    public static func parentFolder(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let i = p.lastIndex(of: "/") else { return "" }
        return i == p.startIndex ? "/" : String(p[..<i])
    }

    private static func writeFiles(_ given: [(path: String, bytes: [UInt8])]) throws {
        var seen = Set<String>()
        var files: [(path: String, bytes: [UInt8])] = []
        for (path, bytes) in given {
            let base = (path as NSString).lastPathComponent
            guard !base.isEmpty, !path.hasSuffix("/") else { throw ModelError(.io, at: path, "not a file path") }
            let destination = try regularDestination(path)
            guard seen.insert(canonicalPath(destination)).inserted else { throw ModelError(.io, at: path, "is named twice among the files to write") }
            files.append((destination, bytes))
        }
        var temporaries: [String] = []
        defer {
            for t in temporaries where !t.isEmpty {
                unlink(t)
                TemporaryFiles.remove(t)
            }
        }
        for (path, bytes) in files { temporaries.append(try writeTemporary(bytes, beside: path)) }
        for (i, (path, _)) in files.enumerated() {
            guard rename(temporaries[i], path) == 0 else { throw ModelError(.io, at: path, "cannot rename into place: \(errnoString())") }
            TemporaryFiles.remove(temporaries[i])
            temporaries[i] = ""
        }
        temporaries = []
    }

    /// Where a write to `path` lands: `path` itself when it is a regular file or nothing yet, the
    /// file a symbolic link points to (the link stays), and an error for a folder, a FIFO, a
    /// socket or a device, which renaming a file over would replace.
    static func regularDestination(_ path: String) throws -> String {
        var st = stat()
        guard lstat(path, &st) == 0 else { return path }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return path
        case S_IFDIR: throw ModelError(.io, at: path, "is a folder")
        case S_IFLNK:
            guard let resolved = realpath(path, nil) else { throw ModelError(.io, at: path, "is a symbolic link to nothing: give the path of a regular file") }
            defer { free(resolved) }
            let target = String(cString: resolved)
            guard stat(target, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw ModelError(.io, at: path, "is a symbolic link to '\(target)', which is not a regular file")
            }
            return target
        default:
            throw ModelError(.io, at: path, "is not a regular file (a FIFO, socket or device, which the write would replace): give the path of a regular file")
        }
    }

    /// `path` made absolute and free of `.`, `..` and symbolic links in its folder (the file
    /// itself may not exist yet), for telling whether two paths name one file.
    public static func canonicalPath(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let dir = (absolute as NSString).deletingLastPathComponent, base = (absolute as NSString).lastPathComponent
        var folder = (dir as NSString).standardizingPath
        if let real = realpath(dir, nil) {
            folder = String(cString: real)
            free(real)
        }
        if base == "." || base == ".." { return ((folder + "/" + base) as NSString).standardizingPath }
        return (folder == "/" ? "" : folder) + "/" + base
    }

    /// Writes `bytes` to a new temporary file beside `path` and flushes it; returns its path.
    private static func writeTemporary(_ bytes: [UInt8], beside path: String) throws -> String {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let tmp = (dir.isEmpty ? "" : dir + "/") + ".\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // Registered before it exists, so an interruption between open and registration leaves nothing.
        TemporaryFiles.add(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            TemporaryFiles.remove(tmp)
            throw ModelError(.io, at: path, "cannot create a file in '\(dir.isEmpty ? "." : dir)': \(errnoString())")
        }
        var ok = false
        defer {
            close(fd)
            if !ok {
                unlink(tmp)
                TemporaryFiles.remove(tmp)
            }
        }
        var written = 0
        try bytes.withUnsafeBytes { buf in
            while written < buf.count {
                let n = write(fd, buf.baseAddress! + written, buf.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ModelError(.io, at: path, "write failed: \(errnoString())")
                }
                written += n
            }
        }
        guard fsync(fd) == 0 else { throw ModelError(.io, at: path, "fsync failed: \(errnoString())") }
        ok = true
        return tmp
    }
}

func errnoString() -> String { String(cString: strerror(errno)) }

/// A read-only memory map of a whole file, unmapped on deinit.
final class MappedFile {
    let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawPointer?

    init(path: String, maxBytes: Int) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelError(.io, at: path, "cannot open: \(errnoString())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelError(.io, at: path, "cannot stat: \(errnoString())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ModelError(.io, at: path, "not a regular file") }
        let size = Int(st.st_size)
        guard size <= maxBytes else {
            throw ModelError(.limitExceeded, at: path, "file is \(size) bytes, over the limit of \(maxBytes) bytes")
        }
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapping = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw ModelError(.io, at: path, "cannot map: \(errnoString())") }
        mapping = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit { if let mapping { munmap(mapping, bytes.count) } }
}

/// Reads tensor payloads stored in files beside a model, refusing any location outside its folder.
struct ExternalDataReader {
    let directory: String
    let limit: Int
    private let total = Counter()

    private final class Counter { var bytes = 0 }

    init(directory: String, limit: Int) {
        self.directory = directory
        self.limit = limit
    }

    /// The payload described by `entries` (keys `location`, `offset`, `length`), which must be `expectedBytes` long.
    func read(entries: [MetadataEntry], expectedBytes: Int, at: String) throws -> (TensorStorage, String, Int) {
        func value(_ key: String) -> String? { entries.first { $0.key == key }?.value }
        guard let location = value("location"), !location.isEmpty else {
            throw ModelError(.externalData, at: at, "external data has no location")
        }
        let offset: Int
        if let o = value("offset") {
            guard let v = Int(o), v >= 0 else { throw ModelError(.externalData, at: at, "external data offset '\(o)' is not a non-negative integer") }
            offset = v
        } else { offset = 0 }
        if let l = value("length") {
            guard let v = Int(l), v >= 0 else { throw ModelError(.externalData, at: at, "external data length '\(l)' is not a non-negative integer") }
            guard v == expectedBytes else {
                throw ModelError(.externalData, at: at, "external data length is \(v) bytes, expected \(expectedBytes)")
            }
        }
        if location.hasPrefix("/") || location.split(separator: "/").contains("..") {
            throw ModelError(.externalData, at: at, "external data location '\(location)' points outside the model's folder")
        }
        let path = directory + "/" + location
        guard let realDir = realpath(directory, nil) else {
            throw ModelError(.externalData, at: at, "cannot resolve the model's folder '\(directory)': \(errnoString())")
        }
        defer { free(realDir) }
        guard let realFile = realpath(path, nil) else {
            throw ModelError(.externalData, at: at, "external data file '\(location)' cannot be opened: \(errnoString())")
        }
        defer { free(realFile) }
        let dirString = String(cString: realDir)
        let fileString = String(cString: realFile)
        guard fileString.hasPrefix(dirString == "/" ? "/" : dirString + "/") else {
            throw ModelError(.externalData, at: at, "external data location '\(location)' resolves outside the model's folder")
        }
        guard expectedBytes <= limit - total.bytes else {
            throw ModelError(.limitExceeded, at: at, "external data exceeds the limit of \(limit) bytes")
        }
        let file = try MappedFile(path: fileString, maxBytes: Int.max)
        let (end, overflow) = offset.addingReportingOverflow(expectedBytes)
        guard !overflow, end <= file.bytes.count else {
            throw ModelError(.externalData, at: at, "external data '\(location)' is \(file.bytes.count) bytes; offset \(offset) + length \(expectedBytes) is past its end")
        }
        total.bytes += expectedBytes
        let storage = TensorStorage(copying: UnsafeRawBufferPointer(rebasing: file.bytes[offset..<end]))
        return (storage, location, offset)
    }
}

extension ModelFile {
    /// What a file that is plainly not an ONNX model is (an empty file, an image, a NumPy or
    /// PyTorch file, JSON), from its first bytes; nil when it may be one. Decoding such bytes as a
    /// `ModelProto` fails with a wire-format detail ("field number 0 is invalid") that does not
    /// tell the user they gave the wrong file.
    static func notAModel(_ bytes: UnsafeRawBufferPointer) -> String? { notA("an ONNX model", bytes) }

    /// What a file that should be `expected` looks like instead, when its first bytes say so
    /// (nil: it may be one).
    static func notA(_ expected: String, _ bytes: UnsafeRawBufferPointer) -> String? {
        guard !bytes.isEmpty else { return "is an empty file, not \(expected)" }
        func starts(_ magic: [UInt8]) -> Bool { bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 } }
        if starts([0x89, 0x50, 0x4E, 0x47]) { return "looks like a PNG image, not \(expected)" }
        if starts([0x93] + Array("NUMPY".utf8)) { return "looks like a NumPy .npy file, not \(expected)" }
        if starts([0x50, 0x4B, 0x03, 0x04]) { return "looks like a zip archive (a PyTorch .pt/.pth file or an .npz?), not \(expected)" }
        if starts([0x1F, 0x8B]) { return "looks like a gzip file, not \(expected)" }
        if starts([0x80]) && bytes.count > 1 && (2...5).contains(bytes[1]) { return "looks like a Python pickle, not \(expected)" }
        // '{' and '[' open no field of a ModelProto or TensorProto (they are group starts, which ONNX never uses).
        if starts(Array("{".utf8)) || starts(Array("[".utf8)) { return "looks like JSON text, not \(expected)" }
        return nil
    }
}
