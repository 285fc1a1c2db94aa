import CPNG
import Foundation
import SCMGraph

/// A folder of PNG images as a finite dataset.
///
/// Every file in the folder (not its subfolders) whose name ends in ".png" (any case) and does not
/// start with "." is an example, in byte order of the names. All must have the same width, height
/// and channel count: gray (gray + alpha counts as gray) or RGB (RGBA counts as RGB); the alpha
/// channel is dropped, not composited. Pixels are read by libpng's simplified API at 8 bits
/// (16-bit files are reduced to 8 bits and taken as sRGB-encoded when they carry no gamma
/// information) and mapped to [-1, 1] as x / 127.5 - 1; sample shape [C, H, W].
public enum PNGFolder {
    /// The most bytes one decoded image may take (guards against absurd sizes in a header).
    static let maxImageBytes = 1 << 28

    static func open(_ folder: String) throws -> DataSource {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch {
            throw DataError(at: folder, "cannot list the folder: \(ModelFile.reason(error))")
        }
        let files = names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".png") }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard !files.isEmpty else { throw DataError(at: folder, "holds no .png files") }
        guard files.count <= Int(Int32.max) else { throw DataError(at: folder, "holds more than 2^31 - 1 .png files") }
        let base = URL(fileURLWithPath: folder)
        var bytes: [UInt8] = []
        var shape: (channels: Int, height: Int, width: Int, first: String)?
        for file in files {
            let path = base.appendingPathComponent(file).path
            let image = try decode(path)
            if let shape {
                guard image.channels == shape.channels, image.height == shape.height, image.width == shape.width else {
                    throw DataError(at: path, "is \(describe(image.channels, image.height, image.width)) but \(shape.first) is \(describe(shape.channels, shape.height, shape.width)): all images of a folder must have the same size and channels")
                }
            } else {
                shape = (image.channels, image.height, image.width, file)
                bytes.reserveCapacity(files.count * image.pixels.count)
            }
            // Interleaved rows (HWC) to planes (CHW).
            let c = image.channels, hw = image.height * image.width
            if c == 1 {
                bytes.append(contentsOf: image.pixels)
            } else {
                for ch in 0..<c { for p in 0..<hw { bytes.append(image.pixels[p * c + ch]) } }
            }
        }
        guard let shape else { throw DataError(at: folder, "holds no .png files") }
        let examples = ByteExamples(bytes: bytes, offset: 0, count: files.count,
                                    sampleSize: shape.channels * shape.height * shape.width)
        return DataSource(name: folder, sampleShape: [shape.channels, shape.height, shape.width], dataRange: (-1, 1),
                          count: files.count, labels: nil, classNames: nil, content: .bytes(examples), reference: .own)
    }

    private static func describe(_ c: Int, _ h: Int, _ w: Int) -> String {
        "\(w)x\(h) \(c == 1 ? "gray" : "RGB")"
    }

    /// A decoded image: 8-bit pixels, rows top to bottom, channels (1 or 3) interleaved.
    public struct Image: Sendable {
        public var width: Int
        public var height: Int
        public var channels: Int
        public var pixels: [UInt8]
    }

    /// Decodes the PNG file at `path`, alpha dropped.
    public static func decode(_ path: String) throws -> Image {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DataError(at: path, "cannot read: \(ModelFile.reason(error))")
        }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard data.count >= 8, data.prefix(8).elementsEqual(signature) else {
            throw DataError(at: path, "not a PNG file (it does not start with the PNG signature)")
        }
        // libpng reads from `data` between begin and finish: both happen inside one access.
        let (raw, width, height, channels, alpha) = try data.withUnsafeBytes { buf throws -> ([UInt8], Int, Int, Int, Bool) in
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            guard png_image_begin_read_from_memory(&image, buf.baseAddress, buf.count) != 0 else {
                throw DataError(at: path, "not a readable PNG: \(message(&image))")
            }
            let color = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
            let alpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
            let channels = color ? 3 : 1, stored = channels + (alpha ? 1 : 0)
            let width = Int(image.width), height = Int(image.height)
            let (size, overflow) = width.multipliedReportingOverflow(by: height * stored)
            guard !overflow, size <= maxImageBytes else {
                png_image_free(&image)
                throw DataError(at: path, "a \(width)x\(height) image is too large (more than \(maxImageBytes) bytes decoded)")
            }
            image.format = (color ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (alpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
            image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
            var raw = [UInt8](repeating: 0, count: size)
            let read = raw.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) != 0 }
            guard read else { throw DataError(at: path, "libpng could not decode it: \(message(&image))") }
            return (raw, width, height, channels, alpha)
        }
        let stored = channels + (alpha ? 1 : 0)
        if !alpha { return Image(width: width, height: height, channels: channels, pixels: raw) }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        for p in 0..<(width * height) {
            for ch in 0..<channels { pixels[p * channels + ch] = raw[p * stored + ch] }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func message(_ image: inout png_image) -> String {
        let text = withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return text.isEmpty ? "unknown libpng error" : text
    }
}
