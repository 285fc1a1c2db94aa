import Foundation
import Testing
@testable import SCMTrain

/// A folder of `count` 5x4 gray PNGs named img0.png...; image i is filled with 30 i + pixel index.
private func grayFolder(count: Int) throws -> String {
    let dir = try temporaryFolder("png")
    for i in 0..<count {
        try write(rawPNG(width: 5, height: 4, colorType: 0, bitDepth: 8, samples: (0..<20).map { 30 * i + $0 }),
                  to: "\(dir)/img\(i).png")
    }
    return dir
}

@Suite("A folder of PNGs")
struct PNGFolderTests {
    @Test("Gray images: shape [1, H, W], every *.png in name order (hidden files and other files skipped), x / 127.5 - 1")
    func gray() throws {
        let dir = try temporaryFolder("png-gray")
        defer { removeTemporaryFolder(dir) }
        // Written out of order; "B.PNG" sorts before "a.png" (byte order), ".hidden.png" is skipped.
        let names = ["c.png", "a.png", "B.PNG", "b.png"]
        for (k, name) in names.enumerated() {
            try write(rawPNG(width: 3, height: 2, colorType: 0, bitDepth: 8, samples: (0..<6).map { 50 * k + $0 }), to: "\(dir)/\(name)")
        }
        try write([1, 2, 3], to: "\(dir)/.hidden.png")
        try write(Array("not an image".utf8), to: "\(dir)/notes.txt")
        try FileManager.default.createDirectory(atPath: "\(dir)/sub", withIntermediateDirectories: false)
        let source = try DataSource.open(dir)
        #expect(source.name == dir)
        #expect(source.count == 4 && source.sampleShape == [1, 2, 3] && source.labels == nil && source.classNames == nil)
        #expect(source.dataRange == (-1, 1))
        let all = try source.referenceSamples(count: 4, seed: 9)
        // Name order: B.PNG (k 2), a.png (k 1), b.png (k 3), c.png (k 0).
        var expected: [Float] = []
        for k in [2, 1, 3, 0] {
            for p in 0..<6 { expected.append(Float(50 * k + p) / 127.5 - 1) }
        }
        #expect(all == expected)
        #expect(try source.referenceSamples(count: 2, seed: 0) == Array(expected[0..<12]))
        let tooMany = try #require(dataError { try source.referenceSamples(count: 5, seed: 0) })
        #expect(tooMany.message.contains("4"))
        #expect(dataError { try DataSource.open(dir, split: .test) }?.message.contains("held-out") == true)
    }

    @Test("RGB, RGBA and gray + alpha: channels planar [C, H, W], alpha dropped (not composited), 16-bit reduced to 8")
    func channels() throws {
        let dir = try temporaryFolder("png-rgb")
        defer { removeTemporaryFolder(dir) }
        let w = 3, h = 2
        let rgb = (0..<(w * h * 3)).map { 7 * $0 + 1 }
        try write(rawPNG(width: w, height: h, colorType: 2, bitDepth: 8, samples: rgb), to: "\(dir)/0.png")
        // The same colours with alpha 0, 128 and 255: dropping alpha gives the colours back.
        var rgba: [Int] = []
        for p in 0..<(w * h) { rgba += rgb[(3 * p)..<(3 * p + 3)] + [[0, 128, 255][p % 3]] }
        try write(rawPNG(width: w, height: h, colorType: 6, bitDepth: 8, samples: rgba), to: "\(dir)/1.png")
        // 16-bit RGB without gamma information, values 257 b: read as b.
        try write(rawPNG(width: w, height: h, colorType: 2, bitDepth: 16, samples: rgb.map { 257 * $0 }), to: "\(dir)/2.png")
        let source = try DataSource.open(dir)
        #expect(source.sampleShape == [3, h, w])
        let all = try source.referenceSamples(count: 3, seed: 0)
        var planar = [Float](repeating: 0, count: 3 * h * w)
        for c in 0..<3 {
            for p in 0..<(h * w) { planar[c * h * w + p] = Float(rgb[3 * p + c]) / 127.5 - 1 }
        }
        #expect(Array(all[0..<18]) == planar)
        #expect(Array(all[18..<36]) == planar)
        #expect(Array(all[36..<54]) == planar)

        let grayDir = try temporaryFolder("png-ga")
        defer { removeTemporaryFolder(grayDir) }
        let gray = [0, 10, 200, 255, 3, 77]
        try write(rawPNG(width: w, height: h, colorType: 4, bitDepth: 8, samples: gray.flatMap { [$0, 0] }), to: "\(grayDir)/a.png")
        try write(rawPNG(width: w, height: h, colorType: 0, bitDepth: 16, samples: gray.map { 257 * $0 }), to: "\(grayDir)/b.png")
        let graySource = try DataSource.open(grayDir)
        #expect(graySource.sampleShape == [1, h, w])
        let grayValues = try graySource.referenceSamples(count: 2, seed: 0)
        #expect(grayValues == (gray + gray).map { Float($0) / 127.5 - 1 })
    }

    @Test("An empty folder, mixed sizes, mixed channels, a non-PNG and a truncated PNG are errors naming the file")
    func errors() throws {
        let empty = try temporaryFolder("png-empty")
        defer { removeTemporaryFolder(empty) }
        try write(Array("x".utf8), to: "\(empty)/readme.txt")
        let emptyError = try #require(dataError { try DataSource.open(empty) })
        #expect(emptyError.location == empty && emptyError.message.contains("no .png"))

        let dir = try grayFolder(count: 2)
        defer { removeTemporaryFolder(dir) }
        try write(rawPNG(width: 4, height: 5, colorType: 0, bitDepth: 8, samples: [Int](repeating: 1, count: 20)), to: "\(dir)/img2.png")
        let sizeError = try #require(dataError { try DataSource.open(dir) })
        #expect(sizeError.location == "\(dir)/img2.png")
        #expect(sizeError.message.contains("4x5") && sizeError.message.contains("5x4") && sizeError.message.contains("img0.png"))

        try write(rawPNG(width: 5, height: 4, colorType: 2, bitDepth: 8, samples: [Int](repeating: 1, count: 60)), to: "\(dir)/img2.png")
        let channelError = try #require(dataError { try DataSource.open(dir) })
        #expect(channelError.location == "\(dir)/img2.png" && channelError.message.contains("RGB") && channelError.message.contains("gray"))

        try write(Array("GIF89a, not a PNG".utf8), to: "\(dir)/img2.png")
        let notPNG = try #require(dataError { try DataSource.open(dir) })
        #expect(notPNG.location == "\(dir)/img2.png" && notPNG.message.contains("not a PNG file"))

        let good = try readBytes("\(dir)/img1.png")
        try write(Array(good.prefix(good.count - 20)), to: "\(dir)/img2.png")
        let truncated = try #require(dataError { try DataSource.open(dir) })
        #expect(truncated.location == "\(dir)/img2.png")

        try FileManager.default.removeItem(atPath: "\(dir)/img2.png")
        try FileManager.default.createDirectory(atPath: "\(dir)/img2.png", withIntermediateDirectories: false)
        let folderNamedPNG = try #require(dataError { try DataSource.open(dir) })
        #expect(folderNamedPNG.location == "\(dir)/img2.png" && folderNamedPNG.message.contains("cannot read"))
    }
}

@Suite("Batches of a finite dataset")
struct FiniteBatchTests {
    /// The image numbers of a batch of the 7-image folder (its pixel 0 is 30 i).
    private func images(_ source: DataSource, step: Int, size: Int, seed: UInt64) -> [Int] {
        let values = batch(source, step: step, size: size, seed: seed)
        return (0..<size).map { byteValue(values[$0 * 20]) / 30 }
    }

    @Test("7 images, batch 3, 7 steps: each epoch visits every image once, epochs differ, the stream crosses epochs")
    func epochs() throws {
        let dir = try grayFolder(count: 7)
        defer { removeTemporaryFolder(dir) }
        let source = try DataSource.open(dir)
        let stream = (0..<7).flatMap { images(source, step: $0, size: 3, seed: 11) }
        #expect(stream.count == 21)
        let epochs = (0..<3).map { Array(stream[(7 * $0)..<(7 * $0 + 7)]) }
        for epoch in epochs { #expect(epoch.sorted() == Array(0..<7)) }
        #expect(epochs[0] != epochs[1] && epochs[1] != epochs[2])
        for (e, epoch) in epochs.enumerated() { #expect(epoch == source.permutation(epoch: e, seed: 11).map(Int.init)) }
        // A batch longer than the dataset runs on into the next epochs.
        #expect(images(source, step: 0, size: 21, seed: 11) == stream)
        #expect(images(source, step: 1, size: 10, seed: 11) == Array(stream[10..<20]))
    }

    @Test("Batches are a pure function of (seed, step, size): same again, from a fresh source, in any order; other steps and seeds differ")
    func determinism() throws {
        let dir = try grayFolder(count: 7)
        defer { removeTemporaryFolder(dir) }
        let source = try DataSource.open(dir)
        let first = (0..<12).map { batch(source, step: $0, size: 3, seed: 42) }
        // Resuming: a fresh source asked for step 9 first, then the others backwards.
        let resumed = try DataSource.open(dir)
        for step in [9, 11, 10] + Array((0..<9).reversed()) {
            #expect(batch(resumed, step: step, size: 3, seed: 42) == first[step])
        }
        #expect(first[0] != first[1])
        let otherSeed = (0..<7).flatMap { images(source, step: $0, size: 3, seed: 43) }
        let sameSeed = (0..<7).flatMap { images(source, step: $0, size: 3, seed: 42) }
        #expect(otherSeed != sameSeed)
        // From several threads at once.
        nonisolated(unsafe) let results = UnsafeMutablePointer<Float>.allocate(capacity: 12 * 60)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 12) { step in
            resumed.batch(step: step, size: 3, seed: 42, into: results + step * 60)
        }
        for step in 0..<12 { #expect(Array(UnsafeBufferPointer(start: results + step * 60, count: 60)) == first[step]) }
    }

    @Test("The epoch shuffle is uniform: 6000 shuffles of 3 give each of the 6 orders about 1000 times; of 7, each image each place about 1/7")
    func uniformShuffle() {
        var counts: [[Int32]: Int] = [:]
        for epoch in 0..<6000 { counts[DataStreams.shuffle(count: 3, epoch: UInt64(epoch), seed: 1), default: 0] += 1 }
        #expect(counts.count == 6)
        // Binomial(6000, 1/6): standard deviation 29; 5 of them.
        for (order, n) in counts { #expect(abs(n - 1000) < 145, "order \(order) drawn \(n) times") }
        var places = [[Int]](repeating: [Int](repeating: 0, count: 7), count: 7)
        for epoch in 0..<7000 {
            for (place, image) in DataStreams.shuffle(count: 7, epoch: UInt64(epoch), seed: 2).enumerated() {
                places[Int(image)][place] += 1
            }
        }
        // Binomial(7000, 1/7): standard deviation 29.
        for image in 0..<7 { for place in 0..<7 { #expect(abs(places[image][place] - 1000) < 145) } }
    }
}
