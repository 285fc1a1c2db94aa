import CZlib
import Foundation

/// Reading IDX files (LeCun's MNIST format), gzipped or not.
///
/// Layout: a 4-byte magic number 0x0000TTDD (two zero bytes, element type TT — 0x08 for unsigned
/// bytes, the only type read here — and the number of dimensions DD), DD big-endian 32-bit sizes,
/// then the elements in row-major order, nothing after them.
enum IDX {
    /// A decoded IDX file of unsigned bytes: its sizes and the whole file, elements from `offset`.
    struct File {
        var dimensions: [Int]
        var bytes: [UInt8]
        var offset: Int
    }

    /// Decompresses the gzip file at `path` whole (zlib's gzread: a file that is not gzip is read
    /// as it is, so an uncompressed IDX file works too). A truncated or corrupt stream — zlib
    /// checks the CRC and length in the trailer — is an error naming the file.
    static func readGzip(_ path: String) throws -> [UInt8] {
        errno = 0
        guard let file = gzopen(path, "rb") else {
            let reason = errno != 0 ? String(cString: strerror(errno)) : "zlib could not open it"
            throw DataError(at: path, "cannot open: \(reason)")
        }
        defer { gzclose(file) }
        gzbuffer(file, 1 << 17)
        var out: [UInt8] = []
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = buffer.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32(chunk)) }
            if n > 0 { out.append(contentsOf: buffer[0..<Int(n)]) }
            if n < Int32(chunk) { break }
        }
        var code: Int32 = 0
        var message = gzerror(file, &code).map { String(cString: $0) } ?? ""
        if message.hasPrefix("\(path): ") { message.removeFirst(path.count + 2) }  // zlib prefixes the path
        if code != Z_OK {
            let reason = code == Z_BUF_ERROR ? "the gzip stream ends early: truncated or corrupt file (zlib: \(message))"
                : code == Z_ERRNO ? "read error: \(String(cString: strerror(errno)))"
                : "corrupt gzip data (zlib: \(message))"
            throw DataError(at: path, reason)
        }
        return out
    }

    /// Parses an IDX file of unsigned bytes with `rank` dimensions from `bytes` (read from `path`),
    /// checking the magic number and that the file holds exactly the elements its sizes declare.
    static func parse(_ bytes: [UInt8], rank: Int, path: String) throws -> File {
        let what = rank == 1 ? "labels" : "images"
        guard bytes.count >= 4 else {
            throw DataError(at: path, "not an IDX file: \(bytes.count) bytes, shorter than the 4-byte magic number")
        }
        let magic = bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let expected = UInt32(0x0800) | UInt32(rank)
        guard magic == expected else {
            throw DataError(at: path, "wrong magic number 0x\(hex(magic)) for an IDX file of \(what): expected 0x\(hex(expected)) (unsigned bytes, \(rank) dimension\(rank == 1 ? "" : "s"))")
        }
        let header = 4 + 4 * rank
        guard bytes.count >= header else {
            throw DataError(at: path, "truncated IDX header: \(bytes.count) bytes, the header needs \(header)")
        }
        var dims: [Int] = []
        var elements = 1
        for d in 0..<rank {
            let size = bytes[(4 + 4 * d)..<(8 + 4 * d)].reduce(0) { $0 << 8 | Int($1) }
            dims.append(size)
            let (product, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow, product <= Int(Int32.max) else {
                throw DataError(at: path, "IDX sizes \(dims) declare more than 2^31 elements")
            }
            elements = product
        }
        guard bytes.count == header + elements else {
            let sizes = dims.map(String.init).joined(separator: "x")
            throw DataError(at: path, "IDX sizes \(sizes) need \(header + elements) bytes (header \(header) + \(elements)) but the file has \(bytes.count)\(bytes.count < header + elements ? " (truncated)" : " (trailing data)")")
        }
        return File(dimensions: dims, bytes: bytes, offset: header)
    }

    private static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 8 - s.count)) + s
    }
}

/// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 28x28 grayscale images of 10 kinds of clothing,
/// 60000 for training and 10000 for testing, as shipped by Debian's `dataset-fashion-mnist`.
enum FashionMNIST {
    /// The environment variable that overrides the folder of the four files.
    static let directoryVariable = "SCM_FASHION_MNIST_DIR"
    /// Where Debian's `dataset-fashion-mnist` puts them.
    static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// The class names, indexed by label.
    static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot"]
    static let side = 28

    /// The (images, labels) file paths of `split` in `directory`.
    static func paths(directory: String, split: DataSource.Split) -> (images: String, labels: String) {
        let prefix = split == .train ? "train" : "t10k"
        let dir = URL(fileURLWithPath: directory)
        return (dir.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz").path,
                dir.appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz").path)
    }

    /// Reads and checks one split: images [N, 28, 28] and N labels in 0...9.
    static func load(directory: String, split: DataSource.Split) throws -> (examples: ByteExamples, labels: [Int]) {
        let (imagesPath, labelsPath) = paths(directory: directory, split: split)
        for path in [imagesPath, labelsPath] where !FileManager.default.fileExists(atPath: path) {
            throw DataError(at: path, "missing: install Debian's dataset-fashion-mnist (tools/setup.sh) or set \(directoryVariable) to a folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz")
        }
        let images = try IDX.parse(IDX.readGzip(imagesPath), rank: 3, path: imagesPath)
        guard images.dimensions[1] == side, images.dimensions[2] == side else {
            throw DataError(at: imagesPath, "images are \(images.dimensions[1])x\(images.dimensions[2]), fashion-mnist's are 28x28")
        }
        let labelFile = try IDX.parse(IDX.readGzip(labelsPath), rank: 1, path: labelsPath)
        let n = images.dimensions[0]
        guard labelFile.dimensions[0] == n else {
            throw DataError(at: labelsPath, "holds \(labelFile.dimensions[0]) labels but \(imagesPath) holds \(n) images")
        }
        guard n > 0 else { throw DataError(at: imagesPath, "holds no images") }
        var labels = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let label = Int(labelFile.bytes[labelFile.offset + i])
            guard label < classNames.count else {
                throw DataError(at: labelsPath, "label \(i) is \(label), fashion-mnist's are 0...9")
            }
            labels[i] = label
        }
        return (ByteExamples(bytes: images.bytes, offset: images.offset, count: n, sampleSize: side * side), labels)
    }

    /// The data source of `split`; `referenceSamples` reads the test split (loaded on first use
    /// when `split` is `.train`).
    static func open(directory: String, split: DataSource.Split) throws -> DataSource {
        let (examples, labels) = try load(directory: directory, split: split)
        let reference: DataSource.Reference = split == .test ? .own
            : .heldOut({ try load(directory: directory, split: .test).examples })
        return DataSource(name: "fashion-mnist", sampleShape: [1, side, side], dataRange: (-1, 1), count: examples.count,
                          labels: labels, classNames: classNames, content: .bytes(examples), reference: reference)
    }
}
