import Foundation
import SCMGraph
import Testing
import TestSupport
@testable import SCMTrigFlow

/// 16 concurrent `sample` calls on one loaded model, from many threads and tasks at once, give
/// results bitwise identical to the same calls run one after another. `make tsan-check` runs this
/// suite under Thread Sanitizer.
@Suite("Concurrency stress")
struct ConcurrencyStressTests {
    /// The calls: different seeds, counts (so several batch sizes and padded batches) and noise.
    static let requests: [(count: Int, seed: UInt64)] = (0..<16).map { (i: Int) -> (count: Int, seed: UInt64) in
        (count: 1 + (i * 5) % 11, seed: UInt64(1000 + i))
    }

    static func sequential(_ model: TrigFlowModel, threads: Int = 2) throws -> [[Float]] {
        let sampler = try model.sampler(steps: 2, options: .init(batch: 4, threads: threads))
        return try requests.map { try sampler.sample(count: $0.count, seed: $0.seed).values }
    }

    /// With 1 worker thread per call the calls share no pool mutex, so Thread Sanitizer sees any
    /// unsynchronized sharing between them; with 2 the pools run too.
    @Test("16 threads sampling at once from a cold sampler match sequential runs bitwise", arguments: [1, 2])
    func threads(workers: Int) throws {
        let model = try TrigFlowModel(path: tinyPath)
        let expected = try Self.sequential(model, threads: workers)
        // A fresh sampler: plans are compiled and workspaces created while the calls race.
        let sampler = try model.sampler(steps: 2, options: .init(batch: 4, threads: workers))
        let results = Results(Self.requests.count)
        let start = DispatchSemaphore(value: 0), done = DispatchGroup()
        for (i, r) in Self.requests.enumerated() {
            done.enter()
            let thread = Thread {
                start.wait()
                results.set(i, Result { try sampler.sample(count: r.count, seed: r.seed).values })
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        for _ in Self.requests { start.signal() }
        done.wait()
        for (i, r) in results.all.enumerated() {
            let values = try #require(try r?.get(), "call \(i) returned nothing")
            let same = values == expected[i]
            #expect(same, "call \(i) (count \(Self.requests[i].count), seed \(Self.requests[i].seed)) differs from the sequential run")
        }
        let stats = sampler.statistics
        #expect(stats.workspacesIdle == stats.workspacesCreated)
        #expect(stats.plansCompiled == 2 * Set(Self.requests.flatMap { sampler.batchSizes(count: $0.count) }).count)
    }

    @Test("16 tasks, two rounds, with prepare racing the calls, match sequential runs bitwise")
    func tasks() async throws {
        let model = try TrigFlowModel(path: tinyPath)
        let expected = try Self.sequential(model)
        let sampler = try model.sampler(steps: 2, options: .init(batch: 4, threads: 2))
        for round in 0..<2 {
            let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
                group.addTask { try sampler.prepare(count: 11); return (-1, []) }
                for (i, r) in Self.requests.enumerated() {
                    group.addTask { (i, try sampler.sample(count: r.count, seed: r.seed).values) }
                }
                return try await group.reduce(into: [Int: [Float]]()) { $0[$1.0] = $1.1 }
            }
            for i in Self.requests.indices {
                let same = results[i] == expected[i]
                #expect(same, "round \(round), call \(i) differs from the sequential run")
            }
        }
    }
}

/// Results written by many threads, each to its own index.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Result<[Float], any Error>?]
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ r: Result<[Float], any Error>) { lock.withLock { values[i] = r } }
    var all: [Result<[Float], any Error>?] { lock.withLock { values } }
}
