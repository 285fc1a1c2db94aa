// scm-alloc-check: checks in an optimized build (`make alloc-check`, part of `make test`) what the
// README says about allocation: `Session.run(_:into:)` on one thread makes no heap allocation at
// all; with worker threads, the calling thread makes one small allocation per loop it hands to
// the workers (the escaping wrapper `withoutActuallyEscaping` puts around the loop body), the
// same number every run; `run(_:)` allocates the tensors it returns.
//
// Allocations are counted by CAllocCounter, which interposes malloc and friends in this
// executable (Linux/glibc) and counts the calling thread's calls. A debug build cannot make the
// check: unspecialized generic code there allocates in places an optimized build does not.
import CAllocCounter
import Foundation
import SCMGraph
import SCMOptimize
import SCMRuntime
import SCMTrigFlow
import TestSupport

nonisolated(unsafe) var failures: [String] = []  // one thread
func expect(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { failures.append(message()) }
}

/// The allocations `body` makes on this thread.
func allocations(_ body: () throws -> Void) rethrows -> Int {
    scm_alloc_counter_start()
    defer { _ = scm_alloc_counter_stop() }
    try body()
    return scm_alloc_counter_stop()
}

/// Where the check can run: glibc (the counter interposes its malloc), and an optimized build.
func environment() -> (glibc: Bool, optimized: Bool) {
    #if os(Linux) && canImport(Glibc)
    let glibc = true
    #else
    let glibc = false
    #endif
    #if DEBUG
    return (glibc, false)
    #else
    return (glibc, true)
    #endif
}
if !environment().glibc {
    print("scm-alloc-check: skipped (the counter interposes glibc's malloc)")
    exit(0)
}
if !environment().optimized {
    print("scm-alloc-check: build it optimized: swift build -c release --product scm-alloc-check")
    exit(2)
}

// The counter sees allocations, the Swift runtime's included.
var sink: [[Int]] = []
sink.reserveCapacity(10)
let control = allocations { for i in 0..<10 { sink.append([Int](repeating: i, count: 100 + i)) } }
expect(scm_alloc_counter_active() != 0 && control >= 10, "the counter saw \(control) allocations of 10 arrays (active: \(scm_alloc_counter_active()))")

/// Checks `run(_:into:)` on `plan` with `threads` workers: after one warm-up run, `repeats` runs
/// make no allocation on one thread, and with more threads the same number every run.
func check(_ name: String, _ plan: Plan, _ inputs: [Tensor], threads: Int, repeats: Int = 20) throws {
    let session = plan.makeSession(threads: threads)
    let outs = plan.outputs.map { UnsafeMutableRawBufferPointer.allocate(byteCount: $0.spec.byteCount, alignment: 64) }
    defer { for b in outs { b.deallocate() } }
    try session.run(inputs, into: outs)
    var perRun: [Int] = []
    perRun.reserveCapacity(repeats)
    for _ in 0..<repeats { perRun.append(try allocations { try session.run(inputs, into: outs) }) }
    var returned: [Tensor] = []
    let plain = try allocations { returned = try session.run(inputs) }
    let total = perRun.reduce(0, +)
    print("  \(name), \(threads) thread\(threads == 1 ? "" : "s"): run(_:into:) \(total) allocations in \(repeats) runs \(Set(perRun).sorted()) per run; run(_:) \(plain); \(plan.stepCount) steps")
    if threads == 1 {
        expect(total == 0, "\(name), 1 thread: run(_:into:) made \(total) allocations in \(repeats) runs")
    } else {
        expect(Set(perRun).count == 1, "\(name), \(threads) threads: allocations per run vary: \(perRun)")
        expect(perRun[0] <= 2 * plan.stepCount, "\(name), \(threads) threads: \(perRun[0]) allocations per run for \(plan.stepCount) steps")
    }
    expect(plain >= plan.outputs.count, "\(name): run(_:) made \(plain) allocations for \(plan.outputs.count) outputs: the counter misses this path")
    expect(outs.map { Array($0) } == returned.map { Array($0.storage!.bytes) }, "\(name): run(_:into:) and run(_:) differ")
}

do {
    print("scm-alloc-check: heap allocations of Session.run(_:into:) (optimized build)")
    let heavy = try Compiler.compile(heavyModel(), shapes: ["x": TensorSpec(.float, [2, 16, 40, 40])])
    let tiny = try ModelFile.load(path: repoRoot + "/models/tiny-trigflow.onnx")
    let stored = try Compiler.compile(tiny, shapes: ["x": TensorSpec(.float, [4, 1, 8, 8]), "t": TensorSpec(.float, [4])])
    let (optimized, _) = try Optimizer.optimize(tiny, t: 1.1, batch: 4)
    let step = try Compiler.compile(optimized, shapes: ["x": TensorSpec(.float, [4, 1, 8, 8])])
    let x = try tensor([4, 1, 8, 8], seed: 5), t = try Tensor(shape: [4], scalars: [Float](repeating: 1.1, count: 4))
    for threads in [1, 3] {
        try check("conv/norm/matmul/softmax graph, batch 2", heavy, [try tensor([2, 16, 40, 40], seed: 4)], threads: threads)
        try check("tiny TrigFlow model, t an input, batch 4", stored, [x, t], threads: threads)
        try check("tiny TrigFlow model optimized for t = 1.1, batch 4", step, [x], threads: threads)
    }
} catch {
    failures.append("error: \(error)")
}
if failures.isEmpty {
    print("scm-alloc-check: ok")
} else {
    for f in failures { print("scm-alloc-check: FAILED: \(f)") }
    exit(1)
}
