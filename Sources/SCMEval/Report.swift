import Foundation

/// The measures of one set of images.
public struct ImageMetrics: Sendable {
    public var count: Int
    /// Fréchet distance of the classifier features to the training set's.
    public var fd: Double
    public var kid: KID
    /// How many images the classifier assigns to each class.
    public var classCounts: [Int]
    /// Pixel-space distance from each of the first images to its nearest training image.
    public var nnDistances: [Double]
    /// The 5% quantile of the test images' nearest-neighbour distances.
    public var nearCopyThreshold: Double

    public var classShares: [Double] { classCounts.map { Double($0) / Double(max(count, 1)) } }
    public var minShare: (share: Double, index: Int) {
        let s = classShares
        let i = s.indices.min { s[$0] < s[$1] } ?? 0
        return (s.isEmpty ? .nan : s[i], i)
    }
    public var nnMean: Double { nnDistances.isEmpty ? .nan : nnDistances.reduce(0, +) / Double(nnDistances.count) }
    /// The share of nearest-neighbour distances below `nearCopyThreshold` (about 5% for real held-out images).
    public var nearCopyShare: Double {
        nnDistances.isEmpty ? .nan : Double(nnDistances.filter { $0 < nearCopyThreshold }.count) / Double(nnDistances.count)
    }
}

/// The measures of one set of 2-D points.
public struct PointMetrics2D: Sendable {
    public var count: Int
    public var supportShare: Double?
    public var energy: Double
    public var sw1: Double
}

/// What image evaluation adds: the classifier and the reference.
public struct ImageDetail: Sendable {
    public var classifier: String
    public var testAccuracy: Double?
    public var classNames: [String]
    public var features: Int
    public var trainCount: Int
    /// The share of sample values outside [-1, 1] (clipped before classification).
    public var outsideRange: Double
    public var sampleFeatureSeconds: Double
}

/// The result of `Evaluation.run`: the samples' measures and the floor's (real test images, or a
/// second set of exact 2-D samples).
public struct EvalReport: Sendable {
    public enum Metrics: Sendable {
        case images(ImageMetrics)
        case points(PointMetrics2D)
    }
    public enum Detail: Sendable {
        case images(ImageDetail)
        /// The support's definition, when the data have one.
        case points(String?)
    }
    public var samplesPath: String
    public var data: String
    public var samples: Metrics
    public var floor: Metrics
    public var detail: Detail
    public var seconds: Double

    /// An aligned table: one row per measure, columns samples and floor.
    public var table: String {
        var rows: [(String, String, String)] = []
        var head = ""
        var tail: [String] = []
        switch (samples, floor, detail) {
        case (.images(let s), .images(let r), .images(let d)):
            head = "scm-eval: \(samplesPath): \(s.count) images vs \(data)'s \(d.trainCount) training images, in the \(d.features) features of \(d.classifier)"
                + (d.testAccuracy.map { String(format: " (test accuracy %.2f%%)", 100 * $0) } ?? "")
            let kid = { (k: KID) in String(format: "%.3f ± %.3f", 1e3 * k.mean, 1e3 * k.std) }
            rows.append(("Fréchet distance", String(format: "%.3f", s.fd), String(format: "%.3f", r.fd)))
            rows.append(("KID x 1000", kid(s.kid), kid(r.kid)))
            let (ms, mi) = s.minShare, (rs, ri) = r.minShare
            rows.append(("smallest class share", String(format: "%.2f%% (%@)", 100 * ms, d.classNames[mi]), String(format: "%.2f%% (%@)", 100 * rs, d.classNames[ri])))
            if !s.nnDistances.isEmpty {
                rows.append(("NN distance to train (mean)", String(format: "%.3f (%ld)", s.nnMean, s.nnDistances.count), String(format: "%.3f (%ld)", r.nnMean, r.nnDistances.count)))
                rows.append((String(format: "share nearer than %.3f", s.nearCopyThreshold), String(format: "%.2f%%", 100 * s.nearCopyShare), String(format: "%.2f%%", 100 * r.nearCopyShare)))
            }
            tail.append("class shares (samples / test set): " + d.classNames.indices.map {
                String(format: "%@ %.1f/%.1f", d.classNames[$0], 100 * s.classShares[$0], 100 * r.classShares[$0])
            }.joined(separator: ", "))
            tail.append(String(format: "KID: %ld subsets of %ld; NN distances in pixel space ([-1, 1] units) for the first samples; the threshold is the test images' 5%% quantile; %.2f%% of sample values were outside [-1, 1] and clipped", s.kid.subsets, s.kid.subsetSize, 100 * d.outsideRange))
        case (.points(let s), .points(let r), .points(let support)):
            head = "scm-eval: \(samplesPath): \(s.count) points vs \(s.count) exact samples of \(data)"
            if let a = s.supportShare, let b = r.supportShare, let support {
                rows.append(("in support (\(support))", String(format: "%.2f%%", 100 * a), String(format: "%.2f%%", 100 * b)))
            }
            rows.append(("energy distance", String(format: "%.5f", s.energy), String(format: "%.5f", r.energy)))
            rows.append(("sliced Wasserstein-1", String(format: "%.5f", s.sw1), String(format: "%.5f", r.sw1)))
            tail.append("floor: a second, independent set of exact samples; SW1 over 256 fixed directions")
        default:
            break
        }
        let floorName = { if case .images = detail { "test set (floor)" } else { "exact (floor)" } }()
        let all = [("measure", "samples", floorName)] + rows
        let w0 = all.map { $0.0.count }.max() ?? 0, w1 = all.map { $0.1.count }.max() ?? 0
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var out = head + "\n"
        for r in all { out += "  " + pad(r.0, w0) + "  " + pad(r.1, w1) + "  " + r.2 + "\n" }
        for t in tail { out += "  " + t + "\n" }
        out += String(format: "  %.1f s", seconds)
        return out
    }

    /// One JSON object: `data`, `samples_path`, `seconds`, `samples` and `floor` (each with the
    /// measures), and for images `classifier`, `test_accuracy`, `classes`, `outside_range`.
    public var json: String {
        func num(_ v: Double?) -> Any { v.map { $0.isFinite ? $0 as Any : NSNull() } ?? NSNull() }
        func metrics(_ m: Metrics) -> [String: Any] {
            switch m {
            case .images(let s):
                var o: [String: Any] = ["count": s.count, "fd": num(s.fd),
                                        "kid": ["mean": num(s.kid.mean), "std": num(s.kid.std), "subsets": s.kid.subsets, "subset_size": s.kid.subsetSize],
                                        "class_shares": s.classShares, "min_class_share": num(s.minShare.share), "min_class": s.minShare.index]
                o["nn"] = s.nnDistances.isEmpty ? NSNull() : ["count": s.nnDistances.count, "mean": num(s.nnMean), "threshold": num(s.nearCopyThreshold),
                                                             "near_share": num(s.nearCopyShare)] as [String: Any]
                return o
            case .points(let p):
                return ["count": p.count, "support_share": num(p.supportShare), "energy_distance": num(p.energy), "sliced_w1": num(p.sw1)]
            }
        }
        var o: [String: Any] = ["data": data, "samples_path": samplesPath, "seconds": num(seconds), "samples": metrics(samples), "floor": metrics(floor)]
        switch detail {
        case .images(let d):
            o["classifier"] = d.classifier
            o["test_accuracy"] = num(d.testAccuracy)
            o["classes"] = d.classNames
            o["features"] = d.features
            o["train_count"] = d.trainCount
            o["outside_range"] = num(d.outsideRange)
            o["sample_feature_seconds"] = num(d.sampleFeatureSeconds)
        case .points(let s):
            o["support"] = s.map { $0 as Any } ?? NSNull()
        }
        guard let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
