import Foundation
import SCMTrigFlow

/// A problem with a dataset: a file that is missing, unreadable or malformed, an unknown name, an
/// argument out of range. `location` names the file, folder or dataset; `message` says what is wrong.
public struct DataError: Error, CustomStringConvertible, Hashable, Sendable {
    /// Where: a file path, a folder, a dataset name.
    public var location: String
    /// What is wrong.
    public var message: String

    /// An error at `location`.
    public init(at location: String, _ message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// A source of training examples, each of `sampleShape` (e.g. [1, 28, 28] or [2]), values in the data range.
///
/// Finite datasets (fashion-mnist, a folder of PNGs) keep their pixels as bytes (47 MB for
/// fashion-mnist's training set) and convert them to floats `x / 127.5 - 1` in `batch`. Samplers
/// (the 2-D toys) draw exact samples from their distribution on demand.
///
/// Random streams: everything is drawn from `Philox4x32` keyed by the seed with one of three
/// stream tags mixed in (`DataStreams`), so data order, toy samples and reference samples never
/// share counters with each other or with `GaussianNoise` under the same seed. Thread safety:
/// `batch` and `referenceSamples` may be called from several threads at once.
public final class DataSource: @unchecked Sendable {
    /// The dataset's name: "fashion-mnist", "checkerboard", ..., or the folder path as given to `open`.
    public let name: String
    /// The shape of one example: [C, H, W] for images, [2] for the toys.
    public let sampleShape: [Int]
    /// (-1, 1) for images; the toys' bounding box (the same interval on both axes) for 2-D data.
    public let dataRange: (Float, Float)
    /// The number of examples of a finite dataset; nil for samplers (toys).
    public let count: Int?
    /// The class label of each example when known (fashion-mnist), else nil.
    public let labels: [Int]?
    /// Fashion-mnist's 10 class names, indexed by label; nil elsewhere.
    public let classNames: [String]?

    /// The names `open` knows.
    public static let names: [String] = ["fashion-mnist"] + Toy.allCases.map(\.rawValue)

    /// Which part of a dataset to open.
    public enum Split: Sendable {
        /// The training examples.
        case train
        /// The held-out examples (fashion-mnist's 10000 test images).
        case test
    }

    /// What the examples come from.
    enum Content {
        /// Finite 8-bit data.
        case bytes(ByteExamples)
        /// A 2-D toy distribution.
        case sampler(Toy)
    }

    /// Where `referenceSamples` takes finite examples from.
    enum Reference {
        /// This source's own examples (a folder, fashion-mnist opened with `.test`).
        case own
        /// A held-out split, loaded on first use.
        case heldOut(@Sendable () throws -> ByteExamples)
        /// Samplers draw their own.
        case sampler
    }

    let content: Content
    private let reference: Reference
    private let lock = NSLock()
    /// The two most recently used permutations (a batch touches at most two epochs unless it is
    /// longer than the dataset), most recent first.
    private var permutations: [(seed: UInt64, epoch: Int, order: [Int32])] = []
    private var heldOut: ByteExamples?

    init(name: String, sampleShape: [Int], dataRange: (Float, Float), count: Int?, labels: [Int]?,
         classNames: [String]?, content: Content, reference: Reference) {
        self.name = name
        self.sampleShape = sampleShape
        self.dataRange = dataRange
        self.count = count
        self.labels = labels
        self.classNames = classNames
        self.content = content
        self.reference = reference
    }

    /// The number of floats in one example.
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    // MARK: Opening

    /// Opens a named dataset or a folder of PNGs.
    ///
    /// A name in `names` wins over a folder of the same name (write `./checkerboard` for the folder).
    /// fashion-mnist is read from `$SCM_FASHION_MNIST_DIR` when set, else from Debian's
    /// `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`). Samplers have no splits
    /// (every draw is fresh) and ignore `split`; a folder has no held-out split, so `.test` on a
    /// folder is an error.
    public static func open(_ nameOrPath: String, split: Split = .train) throws -> DataSource {
        try open(nameOrPath, split: split, environment: ProcessInfo.processInfo.environment)
    }

    /// `open` with the environment given explicitly (tests point `SCM_FASHION_MNIST_DIR` at
    /// temporary folders this way without changing the process's environment under other tests).
    static func open(_ nameOrPath: String, split: Split, environment: [String: String]) throws -> DataSource {
        if nameOrPath == "fashion-mnist" {
            let directory = environment[FashionMNIST.directoryVariable].flatMap { $0.isEmpty ? nil : $0 }
                ?? FashionMNIST.defaultDirectory
            return try FashionMNIST.open(directory: directory, split: split)
        }
        if let toy = Toy(rawValue: nameOrPath) {
            return toy.source()
        }
        var isDirectory: ObjCBool = false
        if !nameOrPath.isEmpty, FileManager.default.fileExists(atPath: nameOrPath, isDirectory: &isDirectory), isDirectory.boolValue {
            guard split == .train else {
                throw DataError(at: nameOrPath, "a folder of PNGs has no held-out split: open it with the train split")
            }
            return try PNGFolder.open(nameOrPath)
        }
        let what = FileManager.default.fileExists(atPath: nameOrPath) ? "is a file, not a folder of PNGs"
            : "is neither a known dataset nor an existing folder of PNGs"
        throw DataError(at: nameOrPath.isEmpty ? "(empty name)" : nameOrPath,
                        "\(what); known datasets: \(names.joined(separator: ", "))")
    }

    // MARK: Batches

    /// Fills `into` with `size` examples [size, sampleShape...] for training step `step` (0-based),
    /// a pure function of (seed, step, size): finite datasets walk a permutation of the examples that is
    /// redrawn each epoch by a seeded Fisher-Yates shuffle (Philox keyed by the seed, counter by epoch);
    /// batches run across epoch boundaries (example k of the stream is permutation(epoch k / count)[k % count]);
    /// samplers draw fresh exact samples keyed by (seed, step, index). Resuming at a step gives the same batches.
    ///
    /// `step` and `size` must not be negative (the caller's contract, checked).
    public func batch(step: Int, size: Int, seed: UInt64, into: UnsafeMutablePointer<Float>) {
        precondition(step >= 0 && size >= 0, "DataSource.batch: step \(step) and size \(size) must not be negative")
        switch content {
        case .sampler(let toy):
            for i in 0..<size {
                toy.sample(streams: .training(seed), step: UInt64(step), index: UInt64(i), into: into + 2 * i)
            }
        case .bytes(let examples):
            let (start, overflow) = step.multipliedReportingOverflow(by: size)
            precondition(!overflow, "DataSource.batch: step \(step) times size \(size) overflows")
            let n = examples.count
            var epoch = -1
            var order: [Int32] = []
            for i in 0..<size {
                let k = start + i
                let e = k / n
                if e != epoch {
                    epoch = e
                    order = permutation(epoch: e, seed: seed)
                }
                examples.convert(Int(order[k % n]), into: into + i * examples.sampleSize)
            }
        }
    }

    /// The order in which epoch `epoch` visits the examples of a finite dataset: a Fisher-Yates
    /// shuffle (`DataStreams.shuffle`), cached for the two most recent (seed, epoch) pairs.
    func permutation(epoch: Int, seed: UInt64) -> [Int32] {
        guard case .bytes(let examples) = content else { return [] }
        lock.lock()
        if let hit = permutations.firstIndex(where: { $0.seed == seed && $0.epoch == epoch }) {
            let order = permutations[hit].order
            if hit != 0 { permutations.insert(permutations.remove(at: hit), at: 0) }
            lock.unlock()
            return order
        }
        lock.unlock()
        let order = DataStreams.shuffle(count: examples.count, epoch: UInt64(epoch), seed: seed)
        lock.lock()
        // Another thread may have drawn the same one meanwhile (the same order: keep one copy).
        if !permutations.contains(where: { $0.seed == seed && $0.epoch == epoch }) {
            permutations.insert((seed, epoch, order), at: 0)
            if permutations.count > 2 { permutations.removeLast() }
        }
        lock.unlock()
        return order
    }

    // MARK: Reference samples

    /// Exact samples for evaluation (samplers) or the first `count` examples of the held-out split
    /// (fashion-mnist: always its test images, whichever split this source was opened with; a
    /// folder: its first `count` images in name order), laid out [count, sampleShape...].
    ///
    /// Samplers draw from a stream keyed apart from training (`DataStreams.reference`), sample i
    /// at counter (i, 0), so the same (count, seed) always gives the same points and a larger
    /// count extends a smaller one.
    public func referenceSamples(count: Int, seed: UInt64) throws -> [Float] {
        guard count >= 0 else { throw DataError(at: name, "reference sample count \(count) is negative") }
        switch content {
        case .sampler(let toy):
            guard count <= Int(UInt32.max) else {
                throw DataError(at: name, "reference sample count \(count) exceeds 2^32 - 1")
            }
            var out = [Float](repeating: 0, count: 2 * count)
            out.withUnsafeMutableBufferPointer { buf in
                for i in 0..<count {
                    toy.sample(streams: .reference(seed), step: 0, index: UInt64(i), into: buf.baseAddress! + 2 * i)
                }
            }
            return out
        case .bytes(let own):
            let examples: ByteExamples
            let what: String
            switch reference {
            case .own, .sampler:
                examples = own
                what = "it holds"
            case .heldOut(let load):
                examples = try heldOutExamples(load)
                what = "its held-out (test) split holds"
            }
            guard count <= examples.count else {
                throw DataError(at: name, "asked for \(count) reference examples but \(what) \(examples.count)")
            }
            var out = [Float](repeating: 0, count: count * examples.sampleSize)
            out.withUnsafeMutableBufferPointer { buf in
                for i in 0..<count { examples.convert(i, into: buf.baseAddress! + i * examples.sampleSize) }
            }
            return out
        }
    }

    private func heldOutExamples(_ load: () throws -> ByteExamples) throws -> ByteExamples {
        lock.lock()
        defer { lock.unlock() }
        if let heldOut { return heldOut }
        let loaded = try load()
        heldOut = loaded
        return loaded
    }
}

/// Finite 8-bit examples, each `sampleSize` bytes laid out like the sample shape, starting at
/// `offset` in `bytes` (an IDX file's pixels are used in place, after its header).
struct ByteExamples: Sendable {
    var bytes: [UInt8]
    var offset: Int
    var count: Int
    var sampleSize: Int

    /// Byte b as a data value: b / 127.5 - 1 in float32 (0 -> -1, 255 -> 1).
    static let table: [Float] = (0..<256).map { Float($0) / 127.5 - 1 }

    /// Writes example `index` as floats to `out`.
    @inline(__always)
    func convert(_ index: Int, into out: UnsafeMutablePointer<Float>) {
        let base = offset + index * sampleSize
        ByteExamples.table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { src in
                for j in 0..<sampleSize { out[j] = table[Int(src[base + j])] }
            }
        }
    }
}

/// The random streams of the data, all Philox4x32-10 (`SCMTrigFlow.Philox4x32`), uniforms
/// u = (w + 0.5) / 2^32 from 32-bit words w, normals by Box-Muller as in `GaussianNoise`.
///
/// Keys: key = (seed & 0xffffffff, (seed >> 32) ^ tag) with tag 0x5348_5546 ("SHUF") for the epoch
/// permutations, 0x5452_4e20 ("TRN ") for toy training samples and 0x5245_4620 ("REF ") for toy
/// reference samples: the same seed gives unrelated streams for each, and none of them is
/// `GaussianNoise`'s stream (key tag 0) for that seed.
enum DataStreams {
    static let shuffleTag: UInt32 = 0x5348_5546
    static let trainingTag: UInt32 = 0x5452_4E20
    static let referenceTag: UInt32 = 0x5245_4620

    /// A toy's stream: training or reference, for a seed.
    struct Toys {
        var generator: Philox4x32
        static func training(_ seed: UInt64) -> Toys { Toys(generator: key(seed, trainingTag)) }
        static func reference(_ seed: UInt64) -> Toys { Toys(generator: key(seed, referenceTag)) }
    }

    static func key(_ seed: UInt64, _ tag: UInt32) -> Philox4x32 {
        Philox4x32(key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32) ^ tag))
    }

    @inline(__always) static func uniform(_ w: UInt32) -> Double { (Double(w) + 0.5) / 4_294_967_296.0 }

    /// Two standard normals from two words (Box-Muller, as `GaussianNoise`).
    @inline(__always) static func normals(_ a: UInt32, _ b: UInt32) -> (Double, Double) {
        let r = (-2 * log(uniform(a))).squareRoot(), theta = 2 * Double.pi * uniform(b)
        return (r * cos(theta), r * sin(theta))
    }

    /// The permutation of 0..<count for `epoch`: Fisher-Yates from the back (for i = count-1 down
    /// to 1, swap i with j uniform in 0...i, starting from the identity). The words come in order
    /// w0, w1, w2, w3 of blocks b = 0, 1, 2, ... with counter (b & 0xffffffff, b >> 32,
    /// epoch & 0xffffffff, epoch >> 32) under the "SHUF" key; j is drawn from them by Lemire's
    /// multiply-and-reject method (exactly uniform: j = (w * (i+1)) >> 32, redrawn while the low 32
    /// bits of the product are below 2^32 mod (i+1)).
    static func shuffle(count: Int, epoch: UInt64, seed: UInt64) -> [Int32] {
        precondition(count >= 0 && count <= Int(Int32.max), "shuffle: count \(count) out of range")
        var order = (0..<count).map { Int32($0) }
        guard count > 1 else { return order }
        let gen = key(seed, shuffleTag)
        var block: UInt64 = 0
        var words: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        var used = 4
        func next() -> UInt32 {
            if used == 4 {
                words = gen.block((UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                                   UInt32(truncatingIfNeeded: epoch), UInt32(truncatingIfNeeded: epoch >> 32)))
                block += 1
                used = 0
            }
            defer { used += 1 }
            switch used {
            case 0: return words.0
            case 1: return words.1
            case 2: return words.2
            default: return words.3
            }
        }
        order.withUnsafeMutableBufferPointer { p in
            var i = count - 1
            while i >= 1 {
                let s = UInt64(i + 1)
                var m = UInt64(next()) * s
                if UInt64(UInt32(truncatingIfNeeded: m)) < s {
                    let threshold = (UInt64(1) << 32 - s) % s
                    while UInt64(UInt32(truncatingIfNeeded: m)) < threshold { m = UInt64(next()) * s }
                }
                let j = Int(m >> 32)
                p.swapAt(i, j)
                i -= 1
            }
        }
        return order
    }
}
