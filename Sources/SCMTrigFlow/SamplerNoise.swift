import Foundation

/// The noise of a sampling call: keyed by a seed (sample i's z_k is `GaussianNoise` of (seed, i,
/// k)), by a key per sample (several callers in one batch), or given (another runtime's noise).
extension Sampler {
    /// The key of one sample's noise: its z_k is `GaussianNoise` of (seed, sample, k), as for
    /// sample `sample` of a `sample(count:seed:)` call with that seed.
    public struct NoiseKey: Sendable, Hashable {
        public var seed: UInt64
        public var sample: UInt32
        public init(seed: UInt64, sample: UInt32) {
            self.seed = seed
            self.sample = sample
        }
    }

    enum NoiseSource {
        case seed(UInt64)
        case given([Float])
        case keyed([NoiseKey])

        /// Writes z_step of the batch's sample j (the call's sample first + j), elements `range`,
        /// at z + j * e. Samples past `real` are padding: seeded noise for the following indices,
        /// given noise zero. `count` is the call's sample count (given noise's second dimension).
        func fill(_ z: UnsafeMutablePointer<Float>, sample j: Int, first: Int, real: Int, count: Int, elements e: Int,
                  range: Range<Int>, step: Int) {
            switch self {
            case .seed(let seed):
                GaussianNoise.fill(z + j * e, elements: range, seed: seed, sample: UInt32(truncatingIfNeeded: first + j), step: UInt32(step))
            case .keyed(let keys):
                // Padding past the last key: any noise (its samples are dropped).
                let k = first + j < keys.count ? keys[first + j] : NoiseKey(seed: 0, sample: UInt32(truncatingIfNeeded: first + j))
                GaussianNoise.fill(z + j * e, elements: range, seed: k.seed, sample: k.sample, step: UInt32(step))
            case .given(let values):
                if j < real {
                    values.withUnsafeBufferPointer { src in
                        (z + j * e + range.lowerBound).update(from: src.baseAddress! + (step * count + first + j) * e + range.lowerBound,
                                                              count: range.count)
                    }
                } else {
                    (z + j * e + range.lowerBound).update(repeating: 0, count: range.count)
                }
            }
        }
    }
}
