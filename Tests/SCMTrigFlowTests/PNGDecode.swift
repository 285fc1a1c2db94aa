import CPNG
import Foundation
@testable import SCMTrigFlow

/// Decodes a PNG with libpng's simplified API (for tests), keeping its own format.
func decodePNG(_ data: Data) throws -> Images.Picture {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) != 0 }
    guard ok else { throw SamplerError(.io, at: "png", "not a PNG") }
    let channels = (image.format & UInt32(PNG_FORMAT_FLAG_COLOR)) != 0 ? 3 : 1
    image.format = channels == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0
    var p = Images.Picture(width: Int(image.width), height: Int(image.height), channels: channels)
    let read = data.withUnsafeBytes { _ in
        p.pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) != 0 }
    }
    guard read else { throw SamplerError(.io, at: "png", "libpng could not read it") }
    return p
}
