// sample-grid MODEL OUT.png: load a TrigFlow model once, draw samples from several concurrent
// tasks through one sampler, and write one task's samples as a PNG grid.
import Foundation
import SCM

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: sample-grid MODEL OUT.png\n".utf8))
    exit(2)
}

do {
    let model = try TrigFlowModel(path: args[1])
    let sampler = try model.sampler(steps: 2, options: Sampler.Options(batch: 8, threads: 1))
    // Four requests at once, as a service would get them; each seed gives its own samples.
    let results = try await withThrowingTaskGroup(of: (UInt64, Samples).self) { group in
        for seed in UInt64(0)..<4 {
            group.addTask { (seed, try sampler.sample(count: 16, seed: seed)) }
        }
        var bySeed: [UInt64: Samples] = [:]
        for try await (seed, samples) in group { bySeed[seed] = samples }
        return bySeed
    }
    guard let first = results[0] else { exit(1) }
    let png = try first.png(nrow: 4)
    try png.write(to: URL(fileURLWithPath: args[2]), options: .atomic)
    print("sample-grid: \(results.count) concurrent requests of \(first.count) samples, \(sampler.evaluations) steps at t = \(sampler.evaluationTimes); wrote \(args[2]) (\(png.count) bytes)")
} catch {
    // The library's errors read "<where>: <what>"; writing the file can fail with a Foundation error.
    FileHandle.standardError.write(Data("sample-grid: \(error)\n".utf8))
    exit(1)
}
