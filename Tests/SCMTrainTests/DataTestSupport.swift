import CZlib
import Foundation
@testable import SCMTrain

/// A new empty folder under the system's temporary folder (removed by `removeTemporaryFolder`).
func temporaryFolder(_ tag: String) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("scm-data-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

func removeTemporaryFolder(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// `bytes` gzipped by zlib (gzwrite).
func writeGzip(_ bytes: [UInt8], to path: String) throws {
    guard let file = gzopen(path, "wb") else { throw DataError(at: path, "test: gzopen failed") }
    let n = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
    let closed = gzclose(file)
    guard n == Int32(bytes.count), closed == Z_OK else { throw DataError(at: path, "test: gzwrite failed") }
}

/// An IDX file of unsigned bytes: magic 0x0000_08RR (or `magic`), the sizes, the elements.
func idx(_ dims: [Int], _ elements: [UInt8], magic: UInt32? = nil) -> [UInt8] {
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    return be(magic ?? (0x0800 | UInt32(dims.count))) + dims.flatMap { be(UInt32($0)) } + elements
}

/// Pixel p of image i in the small fashion-mnist-like sets.
func smallPixel(_ i: Int, _ p: Int) -> UInt8 { UInt8((i * 31 + p) % 256) }

/// Writes a small fashion-mnist-like folder: `train` and `test` images of 28x28 with pixels
/// `smallPixel` (test images numbered after the training ones), labels i % 10. Returns the folder.
func writeSmallFashionSet(train: Int = 6, test: Int = 4) throws -> String {
    let dir = try temporaryFolder("fmnist")
    for (prefix, n, first) in [("train", train, 0), ("t10k", test, train)] {
        let pixels = (0..<(n * 784)).map { smallPixel(first + $0 / 784, $0 % 784) }
        try writeGzip(idx([n, 28, 28], pixels), to: "\(dir)/\(prefix)-images-idx3-ubyte.gz")
        try writeGzip(idx([n], (0..<n).map { UInt8($0 % 10) }), to: "\(dir)/\(prefix)-labels-idx1-ubyte.gz")
    }
    return dir
}

/// Opens fashion-mnist from `dir` as `SCM_FASHION_MNIST_DIR` would (without touching the
/// process's environment, which other tests running in parallel read).
func openFashion(_ dir: String, split: DataSource.Split = .train) throws -> DataSource {
    try DataSource.open("fashion-mnist", split: split, environment: [FashionMNIST.directoryVariable: dir])
}

/// A PNG file written byte by byte (signature, IHDR, one IDAT compressed by zlib, IEND; filter 0
/// on every row, no gamma or colour chunks), so tests control bit depth and colour type.
/// `samples` are the rows' samples in order, 16-bit ones as values up to 65535.
func rawPNG(width: Int, height: Int, colorType: UInt8, bitDepth: UInt8, samples: [Int]) -> [UInt8] {
    let channels = [0: 1, 2: 3, 4: 2, 6: 4][Int(colorType)] ?? 1
    let perRow = width * channels
    var raw: [UInt8] = []
    for y in 0..<height {
        raw.append(0)
        for s in samples[(y * perRow)..<((y + 1) * perRow)] {
            if bitDepth == 16 {
                raw.append(UInt8(s >> 8))
                raw.append(UInt8(s & 0xff))
            } else {
                raw.append(UInt8(s))
            }
        }
    }
    var compressedSize = compressBound(uLong(raw.count))
    var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
    _ = compress(&compressed, &compressedSize, raw, uLong(raw.count))
    compressed = Array(compressed[0..<Int(compressedSize)])
    func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        return be(data.count) + body + be(Int(crc))
    }
    let ihdr = be(width) + be(height) + [bitDepth, colorType, 0, 0, 0]
    return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", compressed) + chunk("IEND", [])
}

/// All the floats of `source`'s batch at (step, size, seed).
func batch(_ source: DataSource, step: Int, size: Int, seed: UInt64) -> [Float] {
    var out = [Float](repeating: .nan, count: size * source.sampleShape.reduce(1, *))
    out.withUnsafeMutableBufferPointer { source.batch(step: step, size: size, seed: seed, into: $0.baseAddress!) }
    return out
}

/// The `DataError` that `body` throws (nil when it throws nothing or something else).
func dataError(_ body: () throws -> Any) -> DataError? {
    do {
        _ = try body()
        return nil
    } catch let error as DataError {
        return error
    } catch {
        return nil
    }
}

/// The byte a data value came from (x = b / 127.5 - 1).
func byteValue(_ x: Float) -> Int { Int(((x + 1) * 127.5).rounded()) }
