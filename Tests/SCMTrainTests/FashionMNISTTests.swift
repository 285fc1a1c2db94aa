import Foundation
import Testing
@testable import SCMTrain

/// The installed dataset (Debian's dataset-fashion-mnist, tools/setup.sh), loaded once for the suite.
private let installedTrain = Result { () throws -> (DataSource, Double) in
    let start = Date()
    let source = try DataSource.open("fashion-mnist")
    return (source, Date().timeIntervalSince(start))
}

@Suite("Fashion-MNIST, installed")
struct FashionMNISTInstalledTests {
    @Test("The training split: 60000 images [1, 28, 28] in [-1, 1], 6000 of each class, bytes as an independent decoder reads them")
    func trainSplit() throws {
        let (source, seconds) = try installedTrain.get()
        print("fashion-mnist train split loaded in \(String(format: "%.3f", seconds)) s")
        #expect(source.name == "fashion-mnist")
        #expect(source.count == 60000)
        #expect(source.sampleShape == [1, 28, 28])
        #expect(source.dataRange == (-1, 1))
        #expect(source.classNames == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
        let labels = try #require(source.labels)
        #expect(labels.count == 60000)
        var histogram = [Int](repeating: 0, count: 10)
        for label in labels { histogram[label] += 1 }
        #expect(histogram == [Int](repeating: 6000, count: 10))
        // Figures from Python's gzip + numpy on the same files.
        #expect(Array(labels.prefix(10)) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        guard case .bytes(let examples) = source.content else { Issue.record("not finite"); return }
        #expect(examples.count == 60000 && examples.sampleSize == 784)
        let total = examples.bytes[examples.offset...].reduce(0) { $0 + Int($1) }
        #expect(total == 3_431_114_169)
        var image = [Float](repeating: 0, count: 784)
        image.withUnsafeMutableBufferPointer { examples.convert(0, into: $0.baseAddress!) }
        #expect(image.map(byteValue).reduce(0, +) == 76247)
        image.withUnsafeMutableBufferPointer { examples.convert(59999, into: $0.baseAddress!) }
        #expect(image.map(byteValue).reduce(0, +) == 16684)
        let values = batch(source, step: 3, size: 512, seed: 1)
        #expect(values.allSatisfy { $0 >= -1 && $0 <= 1 })
    }

    @Test("The test split: 10000 images, 1000 of each class; referenceSamples are its images in order, from either split")
    func testSplit() throws {
        let test = try DataSource.open("fashion-mnist", split: .test)
        #expect(test.count == 10000)
        #expect(test.sampleShape == [1, 28, 28])
        let labels = try #require(test.labels)
        var histogram = [Int](repeating: 0, count: 10)
        for label in labels { histogram[label] += 1 }
        #expect(histogram == [Int](repeating: 1000, count: 10))
        #expect(Array(labels.prefix(10)) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        let all = try test.referenceSamples(count: 10000, seed: 0)
        #expect(all.count == 10000 * 784)
        #expect(all.min() == -1 && all.max() == 1)
        #expect(all[0..<784].map(byteValue).reduce(0, +) == 33456)
        #expect(all[(9999 * 784)...].map(byteValue).reduce(0, +) == 24390)
        // The training split's reference samples are the test images too.
        let (train, _) = try installedTrain.get()
        let fromTrain = try train.referenceSamples(count: 100, seed: 7)
        #expect(fromTrain == Array(all[0..<(100 * 784)]))
        let tooMany = dataError { try train.referenceSamples(count: 10001, seed: 0) }
        #expect(tooMany?.message.contains("10000") == true)
    }

    @Test("Consecutive epochs visit the 60000 images in different orders")
    func epochsDiffer() throws {
        let (source, _) = try installedTrain.get()
        let epoch0 = source.permutation(epoch: 0, seed: 5), epoch1 = source.permutation(epoch: 1, seed: 5)
        #expect(Set(epoch0).count == 60000 && Set(epoch1).count == 60000)
        #expect(epoch0 != epoch1)
        #expect(epoch0 != source.permutation(epoch: 0, seed: 6))
        // The stream crosses the boundary: step 937 of batch 64 holds the last 32 of epoch 0
        // (60000 = 937 * 64 + 32) and the first 32 of epoch 1.
        let values = batch(source, step: 937, size: 64, seed: 5)
        guard case .bytes(let examples) = source.content else { Issue.record("not finite"); return }
        var expected = [Float](repeating: 0, count: 64 * 784)
        expected.withUnsafeMutableBufferPointer { out in
            for i in 0..<64 {
                let index = i < 32 ? epoch0[59968 + i] : epoch1[i - 32]
                examples.convert(Int(index), into: out.baseAddress! + i * 784)
            }
        }
        let same = values == expected  // (not inside #expect: a failure would print 50000 floats)
        #expect(same)
    }
}

@Suite("Fashion-MNIST files, checked")
struct FashionMNISTFileTests {
    @Test("SCM_FASHION_MNIST_DIR points at another folder: a small set loads with exact values and labels")
    func override() throws {
        let dir = try writeSmallFashionSet(train: 6, test: 4)
        defer { removeTemporaryFolder(dir) }
        let source = try openFashion(dir)
        #expect(source.count == 6)
        #expect(source.labels == [0, 1, 2, 3, 4, 5])
        let test = try openFashion(dir, split: .test)
        #expect(test.count == 4)
        #expect(test.labels == [0, 1, 2, 3])
        // Every example of one epoch, exactly: x = b / 127.5 - 1.
        let epoch = batch(source, step: 0, size: 6, seed: 3)
        let order = source.permutation(epoch: 0, seed: 3)
        #expect(Set(order).count == 6)
        var expected: [Float] = []
        for i in 0..<6 {
            for p in 0..<784 { expected.append(Float(smallPixel(Int(order[i]), p)) / 127.5 - 1) }
        }
        #expect(epoch == expected)
        let reference = try source.referenceSamples(count: 4, seed: 0)
        #expect((0..<(4 * 784)).allSatisfy { reference[$0] == Float(smallPixel(6 + $0 / 784, $0 % 784)) / 127.5 - 1 })
        #expect(dataError { try source.referenceSamples(count: 5, seed: 0) } != nil)
    }

    @Test("A missing folder or file is an error naming the file and how to install the dataset")
    func missing() throws {
        let dir = try temporaryFolder("fmnist-missing")
        defer { removeTemporaryFolder(dir) }
        let error = try #require(dataError { try openFashion(dir) })
        #expect(error.location.hasSuffix("train-images-idx3-ubyte.gz"))
        #expect(error.message.contains("dataset-fashion-mnist") && error.message.contains("SCM_FASHION_MNIST_DIR"))
    }

    @Test("A truncated .gz file is an error naming it, whether cut inside the data or only its trailer",
          arguments: [0.5, 0.999])
    func truncated(keep: Double) throws {
        let dir = try writeSmallFashionSet()
        defer { removeTemporaryFolder(dir) }
        let path = "\(dir)/train-images-idx3-ubyte.gz"
        let whole = try readBytes(path)
        let cut = keep > 0.99 ? whole.count - 4 : Int(Double(whole.count) * keep)
        try write(Array(whole[0..<cut]), to: path)
        let error = try #require(dataError { try openFashion(dir) })
        #expect(error.location == path)
        #expect(error.message.contains("truncated"))
    }

    @Test("A corrupt .gz file (a flipped byte in the compressed data, in the CRC) is an error naming it",
          arguments: [10, 6])
    func corrupt(fromEnd: Int) throws {
        let dir = try writeSmallFashionSet()
        defer { removeTemporaryFolder(dir) }
        let path = "\(dir)/train-labels-idx1-ubyte.gz"
        var bytes = try readBytes(path)
        bytes[bytes.count - fromEnd] ^= 0x55
        try write(bytes, to: path)
        let error = try #require(dataError { try openFashion(dir) })
        #expect(error.location == path)
        #expect(error.message.contains("corrupt"))
    }

    @Test("A wrong magic number is an error naming the file and both numbers")
    func wrongMagic() throws {
        let dir = try writeSmallFashionSet()
        defer { removeTemporaryFolder(dir) }
        let path = "\(dir)/train-images-idx3-ubyte.gz"
        let pixels = [UInt8](repeating: 7, count: 6 * 784)
        try writeGzip(idx([6, 28, 28], pixels, magic: 0x0000_0801), to: path)
        let error = try #require(dataError { try openFashion(dir) })
        #expect(error.location == path)
        #expect(error.message.contains("magic") && error.message.contains("0x00000801") && error.message.contains("0x00000803"))
        // Labels given the images' magic.
        let labelsPath = "\(dir)/t10k-labels-idx1-ubyte.gz"
        try writeGzip(idx([4], [0, 1, 2, 3], magic: 0x0000_0803), to: labelsPath)
        let labelError = try #require(dataError { try openFashion(dir, split: .test) })
        #expect(labelError.location == labelsPath)
    }

    @Test("Label and image counts that disagree (fewer or more labels) are an error naming both files", arguments: [5, 7])
    func countMismatch(labelCount: Int) throws {
        let dir = try writeSmallFashionSet(train: 6)
        defer { removeTemporaryFolder(dir) }
        let labelsPath = "\(dir)/train-labels-idx1-ubyte.gz"
        try writeGzip(idx([labelCount], (0..<labelCount).map { UInt8($0) }), to: labelsPath)
        let error = try #require(dataError { try openFashion(dir) })
        #expect(error.location == labelsPath)
        #expect(error.message.contains("\(labelCount) labels") && error.message.contains("6 images") && error.message.contains("train-images-idx3-ubyte.gz"))
    }

    @Test("Sizes that disagree with the data, images not 28x28, labels above 9 and an empty set are errors")
    func badContents() throws {
        let dir = try writeSmallFashionSet(train: 6)
        defer { removeTemporaryFolder(dir) }
        let images = "\(dir)/train-images-idx3-ubyte.gz", labels = "\(dir)/train-labels-idx1-ubyte.gz"
        let good = [UInt8](repeating: 1, count: 6 * 784)
        // One byte short of what the header declares, one byte over.
        try writeGzip(idx([6, 28, 28], Array(good.dropLast())), to: images)
        #expect(dataError { try openFashion(dir) }?.message.contains("truncated") == true)
        try writeGzip(idx([6, 28, 28], good + [0]), to: images)
        #expect(dataError { try openFashion(dir) }?.message.contains("trailing") == true)
        // A header cut short.
        try writeGzip(Array(idx([6, 28, 28], []).prefix(10)), to: images)
        #expect(dataError { try openFashion(dir) }?.message.contains("header") == true)
        // 27x28 images.
        try writeGzip(idx([6, 27, 28], [UInt8](repeating: 1, count: 6 * 27 * 28)), to: images)
        let sizeError = try #require(dataError { try openFashion(dir) })
        #expect(sizeError.location == images && sizeError.message.contains("27x28"))
        // A label of 10.
        try writeGzip(idx([6, 28, 28], good), to: images)
        try writeGzip(idx([6], [0, 1, 2, 10, 4, 5]), to: labels)
        let labelError = try #require(dataError { try openFashion(dir) })
        #expect(labelError.location == labels && labelError.message.contains("label 3 is 10"))
        // No images at all.
        try writeGzip(idx([0, 28, 28], []), to: images)
        try writeGzip(idx([0], []), to: labels)
        #expect(dataError { try openFashion(dir) }?.message.contains("no images") == true)
    }
}

@Suite("Opening data sources")
struct OpenTests {
    @Test("The known names open; an unknown name lists them; a file is not a folder")
    func names() throws {
        #expect(DataSource.names == ["fashion-mnist", "checkerboard", "gaussians8", "moons", "swissroll"])
        for name in DataSource.names.dropFirst() {
            let source = try DataSource.open(name)
            #expect(source.name == name && source.sampleShape == [2] && source.count == nil && source.labels == nil)
        }
        let error = try #require(dataError { try DataSource.open("mnist-fashion") })
        #expect(error.location == "mnist-fashion")
        for name in DataSource.names { #expect(error.message.contains(name)) }
        let dir = try writeSmallFashionSet()
        defer { removeTemporaryFolder(dir) }
        let file = "\(dir)/train-labels-idx1-ubyte.gz"
        #expect(dataError { try DataSource.open(file) }?.message.contains("is a file") == true)
        #expect(dataError { try DataSource.open("") } != nil)
    }
}
