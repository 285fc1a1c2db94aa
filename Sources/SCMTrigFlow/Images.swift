import CPNG
import Foundation

/// Turns samples into pictures: data values to 8-bit pixels, image grids, a scatter plot for 2-D
/// vector data, and PNG encoding by libpng.
public enum Images {
    /// Padding between grid cells and around the grid, in pixels (value 0).
    public static let gridPadding = 2
    /// Side of the square scatter plot, in pixels.
    public static let scatterSize = 512

    /// The pixel for data value `x` when `range` maps to 0...255:
    /// `floor((x - lo) * (255 / (hi - lo)) + 0.5)` in float32, clamped to 0...255; NaN gives 0.
    @inline(__always)
    public static func pixel(_ x: Float, low: Float, scale: Float) -> UInt8 {
        let y = (x - low) * scale + 0.5
        if !(y >= 0) { return 0 }
        if y >= 255 { return 255 }
        return UInt8(y)
    }

    /// The scale `pixel` uses for `range`: 255 / (hi - lo), in float32.
    public static func scale(for range: (Float, Float)) -> Float { 255 / (range.1 - range.0) }

    /// An 8-bit picture, rows top to bottom, channels interleaved (1 = gray, 3 = RGB).
    public struct Picture: Sendable {
        /// Width in pixels.
        public var width: Int
        /// Height in pixels.
        public var height: Int
        /// Channels per pixel: 1 (gray) or 3 (RGB).
        public var channels: Int
        /// `height` rows of `width * channels` bytes, top row first.
        public var pixels: [UInt8]

        /// A picture filled with `value`.
        public init(width: Int, height: Int, channels: Int, value: UInt8 = 0) {
            self.width = width
            self.height = height
            self.channels = channels
            pixels = [UInt8](repeating: value, count: width * height * channels)
        }

        /// The PNG encoding (libpng, 8 bits per channel, no interlacing).
        public func png() throws(SamplerError) -> Data {
            guard channels == 1 || channels == 3 else {
                throw SamplerError(.invalidArgument, at: "png", "needs 1 (gray) or 3 (RGB) channels, the picture has \(channels)")
            }
            guard width >= 1, height >= 1, width <= 1 << 24, height <= 1 << 24 else {
                throw SamplerError(.invalidArgument, at: "png", "a \(width)x\(height) picture cannot be written")
            }
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(width)
            image.height = UInt32(height)
            image.format = channels == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0
            var size = 0
            let ok = pixels.withUnsafeBytes { buf -> Bool in
                // First call: the size; second: the bytes.
                guard png_image_write_to_memory(&image, nil, &size, 0, buf.baseAddress, 0, nil) != 0 else { return false }
                return true
            }
            guard ok, size > 0 else { throw SamplerError(.io, at: "png", "libpng failed: \(Self.message(&image))") }
            var out = Data(count: size)
            let wrote = out.withUnsafeMutableBytes { dst in
                pixels.withUnsafeBytes { src in
                    png_image_write_to_memory(&image, dst.baseAddress, &size, 0, src.baseAddress, 0, nil) != 0
                }
            }
            guard wrote else { throw SamplerError(.io, at: "png", "libpng failed: \(Self.message(&image))") }
            png_image_free(&image)
            return out.prefix(size)
        }

        private static func message(_ image: inout png_image) -> String {
            withUnsafeBytes(of: &image.message) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }
    }

    /// The pixels of image `index` of `values` laid out [N, C, H, W], channels interleaved.
    static func picture(_ values: UnsafeBufferPointer<Float>, index: Int, channels c: Int, height h: Int, width w: Int,
                        range: (Float, Float)) -> Picture {
        var p = Picture(width: w, height: h, channels: c)
        blit(values, index: index, channels: c, height: h, width: w, range: range, into: &p, x: 0, y: 0)
        return p
    }

    private static func blit(_ values: UnsafeBufferPointer<Float>, index: Int, channels c: Int, height h: Int, width w: Int,
                             range: (Float, Float), into p: inout Picture, x: Int, y: Int) {
        let base = index * c * h * w, scale = scale(for: range)
        for ch in 0..<c {
            for row in 0..<h {
                for col in 0..<w {
                    let v = values[base + (ch * h + row) * w + col]
                    p.pixels[((y + row) * p.width + x + col) * c + ch] = pixel(v, low: range.0, scale: scale)
                }
            }
        }
    }

    /// A grid of the images in `values` ([N, C, H, W], C = 1 or 3): `nrow` images per row,
    /// `gridPadding` pixels of 0 between cells and around the edge (torchvision's `make_grid`
    /// layout).
    static func grid(_ values: UnsafeBufferPointer<Float>, count n: Int, channels c: Int, height h: Int, width w: Int,
                     nrow: Int, range: (Float, Float)) -> Picture {
        let cols = max(1, min(nrow, n)), rows = (n + cols - 1) / cols, pad = gridPadding
        var p = Picture(width: cols * (w + pad) + pad, height: rows * (h + pad) + pad, channels: c)
        for i in 0..<n {
            blit(values, index: i, channels: c, height: h, width: w, range: range, into: &p,
                 x: pad + (i % cols) * (w + pad), y: pad + (i / cols) * (h + pad))
        }
        return p
    }

    /// A scatter plot of 2-D points ([N, 2]) on a white `scatterSize` square: axes through 0 in
    /// light gray, points as 3x3 blue dots. Both axes span `range` when given, else the points'
    /// extent plus 5%. Non-finite points are left out.
    static func scatter(_ values: UnsafeBufferPointer<Float>, count n: Int, range: (Float, Float)?) -> Picture {
        let size = scatterSize
        var p = Picture(width: size, height: size, channels: 3, value: 255)
        var lo: Float, hi: Float
        if let range {
            (lo, hi) = range
        } else {
            let finite = (0..<(2 * n)).map { values[$0] }.filter(\.isFinite)
            lo = finite.min() ?? -1
            hi = finite.max() ?? 1
            let margin = max(hi - lo, 1e-3) * 0.05
            lo -= margin
            hi += margin
        }
        func coordinate(_ v: Float) -> Int? {
            let u = (v - lo) / (hi - lo) * Float(size - 1)
            guard u.isFinite, u >= 0, u <= Float(size - 1) else { return nil }
            return Int(u.rounded())
        }
        func set(_ x: Int, _ y: Int, _ rgb: (UInt8, UInt8, UInt8)) {
            guard x >= 0, x < size, y >= 0, y < size else { return }
            let o = (y * size + x) * 3
            p.pixels[o] = rgb.0
            p.pixels[o + 1] = rgb.1
            p.pixels[o + 2] = rgb.2
        }
        if let zero = coordinate(0) {
            for k in 0..<size {
                set(zero, k, (210, 210, 210))
                set(k, size - 1 - zero, (210, 210, 210))
            }
        }
        for i in 0..<n {
            guard let x = coordinate(values[2 * i]), let y = coordinate(values[2 * i + 1]) else { continue }
            for dy in -1...1 { for dx in -1...1 { set(x + dx, size - 1 - y + dy, (31, 119, 180)) } }
        }
        return p
    }
}
