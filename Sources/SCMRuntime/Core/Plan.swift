import Foundation
import SCMGraph

/// Where a step reads or writes a value.
enum Slot: Sendable {
    /// Bytes at this offset of the session's arena.
    case arena(Int)
    /// The bytes of `Plan.constants[i]`.
    case constant(Int)
    /// An omitted optional input.
    case none
}

/// One kernel invocation of a plan.
struct Step: Sendable {
    let label: String
    let opType: String
    let kernel: any Kernel
    let inputs: [Slot]
    let outputs: [Slot]
    /// The outputs' types (for `SCM_CHECK_FINITE`).
    let outputSpecs: [TensorSpec]
    let flops: Int
}

/// A graph input the caller passes to `run`.
public struct PlanInput: Sendable {
    /// The graph input's name.
    public let name: String
    /// The dtype and shape `run` expects.
    public let spec: TensorSpec
    /// Set when the compiler fixed this input's value (it needed it for a shape); `run` then
    /// checks that the value passed is the same.
    public let pinned: Tensor?
    let slot: Slot
}

/// A graph output `run` returns.
public struct PlanOutput: Sendable {
    /// The graph output's name.
    public let name: String
    /// The dtype and shape `run` returns.
    public let spec: TensorSpec
    let slot: Slot
}

/// A compiled graph: a kernel per node, every shape static, constants folded, and one arena
/// whose layout reuses memory by liveness. Immutable and `Sendable`: any number of sessions
/// (each with its own arena and threads) can run it at once.
public final class Plan: Sendable {
    /// The inputs `run` takes, in graph order (graph inputs the compiler did not fold).
    public let inputs: [PlanInput]
    /// The outputs `run` returns, in graph order.
    public let outputs: [PlanOutput]
    let steps: [Step]
    let constants: [Tensor]
    /// Bytes of the activation arena (graph inputs, intermediates and outputs), the planned peak.
    public let arenaBytes: Int
    /// Bytes the activations would take without reuse (sum of all buffers), for comparison.
    public let unplannedBytes: Int
    /// Scratch bytes per worker thread.
    public let scratchBytes: Int
    /// Multiply-add FLOPs (x2) of one run.
    public let flops: Int
    /// Nodes evaluated at compile time (constants, shapes, nodes whose inputs were all known).
    public let foldedNodes: Int
    /// The convolutions' arithmetic: what `Compiler.compile` was asked for, as this CPU runs it.
    public let precision: Precision
    /// Ops of the steps, in execution order.
    public var stepOps: [String] { steps.map(\.opType) }
    public var stepCount: Int { steps.count }

    init(inputs: [PlanInput], outputs: [PlanOutput], steps: [Step], constants: [Tensor], arenaBytes: Int,
         unplannedBytes: Int, scratchBytes: Int, foldedNodes: Int, precision: Precision) {
        self.inputs = inputs
        self.outputs = outputs
        self.steps = steps
        self.constants = constants
        self.arenaBytes = arenaBytes
        self.unplannedBytes = unplannedBytes
        self.scratchBytes = scratchBytes
        self.flops = steps.reduce(0) { $0 + $1.flops }
        self.foldedNodes = foldedNodes
        self.precision = precision
    }

    /// A session with its own arena and `threads` workers (including the caller's thread).
    /// `minParallelElements`: loops estimated smaller run on the calling thread (`ThreadPool`).
    public func makeSession(threads: Int = 1,
                            minParallelElements: Int = ThreadPool.defaultMinParallelElements) -> Session {
        Session(plan: self, workspace: Workspace(threads: threads, arenaBytes: arenaBytes, scratchBytes: scratchBytes,
                                                 minParallelElements: minParallelElements))
    }

    /// A session that runs in `workspace` (its threads, arena and scratch), which must be large
    /// enough for this plan (`Workspace.fits`). Sessions sharing a workspace run one at a time (a
    /// lock in the workspace serializes them): a sampler runs one plan per step, one after another, in one workspace.
    public func makeSession(in workspace: Workspace) throws -> Session {
        guard workspace.fits(self) else {
            throw RuntimeError(.badInput, at: "workspace", "has \(workspace.arenaBytes) arena and \(workspace.scratchBytes) scratch bytes; the plan needs \(arenaBytes) and \(scratchBytes)")
        }
        return Session(plan: self, workspace: workspace)
    }
}

/// Threads, an activation arena and per-thread scratch memory, allocated once. A session runs in
/// one; plans that run one after another (the steps of a sampler) can share one, so memory is the
/// largest plan's, not the sum. The arena is never assumed to hold anything between runs.
public final class Workspace: @unchecked Sendable {
    /// Arena bytes.
    public let arenaBytes: Int
    /// Scratch bytes per worker.
    public let scratchBytes: Int
    /// Worker threads, including the caller's.
    public var threads: Int { pool.threads }
    let pool: ThreadPool
    let arena: UnsafeMutableRawPointer
    let scratch: UnsafeMutableRawPointer
    let scratchStride: Int
    /// Serializes the runs of all sessions in this workspace.
    let lock = NSLock()

    /// A workspace with `threads` workers, `arenaBytes` of arena and `scratchBytes` per worker.
    /// `minParallelElements`: loops estimated smaller run on the calling thread (`ThreadPool`).
    public init(threads: Int, arenaBytes: Int, scratchBytes: Int,
                minParallelElements: Int = ThreadPool.defaultMinParallelElements) {
        self.arenaBytes = max(arenaBytes, 0)
        self.scratchBytes = max(scratchBytes, 0)
        pool = ThreadPool(threads: threads, minParallelElements: minParallelElements)
        arena = UnsafeMutableRawPointer.allocate(byteCount: max(self.arenaBytes, 64), alignment: 64)
        arena.initializeMemory(as: UInt8.self, repeating: 0, count: max(self.arenaBytes, 64))
        scratchStride = (self.scratchBytes + 63) / 64 * 64
        scratch = UnsafeMutableRawPointer.allocate(byteCount: max(scratchStride * pool.threads, 64), alignment: 64)
        // Touched now, as the arena: the first runs would otherwise take its page faults.
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: max(scratchStride * pool.threads, 64))
    }

    /// A workspace large enough for every plan in `plans`.
    public convenience init(threads: Int, for plans: [Plan]) {
        self.init(threads: threads, arenaBytes: plans.map(\.arenaBytes).max() ?? 0,
                  scratchBytes: plans.map(\.scratchBytes).max() ?? 0)
    }

    /// Whether `plan` can run in this workspace.
    public func fits(_ plan: Plan) -> Bool { plan.arenaBytes <= arenaBytes && plan.scratchBytes <= scratchBytes }

    /// Runs `body(i, worker)` for every i in 0..<count on the workspace's threads (indices claimed
    /// one at a time, in no fixed order: give each index its own output), between the runs of
    /// its sessions: a caller's own per-sample work (a sampler's noise and mixing).
    public func parallelFor(_ count: Int, _ body: (Int, Int) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        pool.parallelFor(count, elements: .max, body)
    }

    deinit {
        arena.deallocate()
        scratch.deallocate()
    }
}

/// Runs a plan. A session runs in a `Workspace` (arena, scratch memory and a thread pool, all
/// allocated when it is made); `run` allocates nothing but the tensors it returns, and
/// `run(_:into:)` on one thread nothing at all (with worker threads: one small allocation per
/// loop handed to them). Runs on one session are serialized by a lock; use one session per
/// concurrent caller.
public final class Session: @unchecked Sendable {
    /// The plan this session runs.
    public let plan: Plan
    /// Worker threads, including the caller's.
    public var threads: Int { pool.threads }
    /// Where the session runs; shared with other sessions only when they run one at a time.
    public let workspace: Workspace
    private var pool: ThreadPool { workspace.pool }
    private var arena: UnsafeMutableRawPointer { workspace.arena }
    private var scratch: UnsafeMutableRawPointer { workspace.scratch }
    private var scratchStride: Int { workspace.scratchStride }
    private let inTable: UnsafeMutablePointer<UnsafeRawPointer>
    private let outTable: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private let inStart: [Int]
    private let outStart: [Int]
    /// Steps `SCM_CHECK_FINITE` has named in the current run.
    private var reported = 0
    private var lock: NSLock { workspace.lock }

    init(plan: Plan, workspace: Workspace) {
        self.plan = plan
        self.workspace = workspace
        let arena = workspace.arena
        let nIn = plan.steps.reduce(0) { $0 + $1.inputs.count }
        let nOut = plan.steps.reduce(0) { $0 + $1.outputs.count }
        inTable = .allocate(capacity: max(nIn, 1))
        outTable = .allocate(capacity: max(nOut, 1))
        var inStart: [Int] = [], outStart: [Int] = []
        var i = 0, o = 0
        for step in plan.steps {
            inStart.append(i)
            outStart.append(o)
            for s in step.inputs {
                (inTable + i).initialize(to: UnsafeRawPointer(Session.address(s, arena: arena, plan: plan)))
                i += 1
            }
            for s in step.outputs {
                (outTable + o).initialize(to: Session.address(s, arena: arena, plan: plan))
                o += 1
            }
        }
        self.inStart = inStart
        self.outStart = outStart
    }

    deinit {
        inTable.deallocate()
        outTable.deallocate()
    }

    static func address(_ slot: Slot, arena: UnsafeMutableRawPointer, plan: Plan) -> UnsafeMutableRawPointer {
        switch slot {
        case .arena(let off): return arena + off
        case .constant(let i):
            // Kernels never write to inputs; the pointer is mutable only to share one table type.
            return UnsafeMutableRawPointer(mutating: plan.constants[i].storage!.bytes.baseAddress ?? UnsafeRawPointer(arena))
        case .none: return arena
        }
    }

    private func check(_ inputs: [Tensor]) throws {
        guard inputs.count == plan.inputs.count else {
            throw RuntimeError(.badInput, at: "run", "expected \(plan.inputs.count) inputs (\(plan.inputs.map(\.name).joined(separator: ", "))), got \(inputs.count)")
        }
        for (t, p) in zip(inputs, plan.inputs) {
            guard t.dtype == p.spec.dtype, t.shape == p.spec.shape else {
                throw RuntimeError(.badInput, at: "input '\(p.name)'", "expected \(p.spec), got \(t.dtype) \(t.shape)")
            }
            guard let s = t.storage, s.bytes.count == p.spec.byteCount else {
                throw RuntimeError(.badInput, at: "input '\(p.name)'", "has no numeric payload of \(p.spec.byteCount) bytes")
            }
            if let pin = p.pinned, let ps = pin.storage, !ps.bytes.elementsEqual(s.bytes) {
                throw RuntimeError(.badInput, at: "input '\(p.name)'",
                                   "the plan was compiled for another value of this input (it fixes a shape); compile again for this value")
            }
        }
    }

    /// Runs the plan on `inputs` (in `plan.inputs` order) and returns the outputs.
    public func run(_ inputs: [Tensor]) throws -> [Tensor] {
        try check(inputs)
        lock.lock()
        defer { lock.unlock() }
        execute(inputs)
        return try plan.outputs.map { o in
            let src = UnsafeRawPointer(Session.address(o.slot, arena: arena, plan: plan))
            let storage = TensorStorage(copying: UnsafeRawBufferPointer(start: src, count: o.spec.byteCount))
            return try Tensor(dtype: o.spec.dtype, shape: o.spec.shape, data: .bytes(storage), meta: TensorMeta(name: o.name))
        }
    }

    /// Runs the plan and copies output `i` into `outputs[i]` (exactly `plan.outputs[i].spec.byteCount`
    /// bytes each). In an optimized build this allocates nothing on one thread; with worker threads,
    /// one small object per loop handed to them (`withoutActuallyEscaping`'s wrapper of the body).
    public func run(_ inputs: [Tensor], into outputs: [UnsafeMutableRawBufferPointer]) throws {
        try check(inputs)
        guard outputs.count == plan.outputs.count else {
            throw RuntimeError(.badInput, at: "run", "expected \(plan.outputs.count) output buffers, got \(outputs.count)")
        }
        for (b, o) in zip(outputs, plan.outputs) where b.count != o.spec.byteCount {
            throw RuntimeError(.badInput, at: "output '\(o.name)'", "buffer has \(b.count) bytes, expected \(o.spec.byteCount)")
        }
        lock.lock()
        defer { lock.unlock() }
        execute(inputs)
        for (b, o) in zip(outputs, plan.outputs) where o.spec.byteCount > 0 {
            b.baseAddress!.copyMemory(from: Session.address(o.slot, arena: arena, plan: plan), byteCount: o.spec.byteCount)
        }
    }

    /// Runs the plan once and returns the wall-clock seconds of each step, labelled by op type.
    public func profile(_ inputs: [Tensor]) throws -> [(op: String, node: String, seconds: Double)] {
        try check(inputs)
        lock.lock()
        defer { lock.unlock() }
        copyIn(inputs)
        var out: [(String, String, Double)] = []
        for (k, step) in plan.steps.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            step.kernel.run(KernelIO(ins: inTable + inStart[k], outs: outTable + outStart[k], pool: pool,
                                     scratchBase: scratch, scratchStride: scratchStride))
            out.append((step.opType, step.label, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
        }
        return out
    }

    /// Copies the (checked) inputs into their arena slots.
    private func copyIn(_ inputs: [Tensor]) {
        for (t, p) in zip(inputs, plan.inputs) where p.spec.byteCount > 0 {
            if case .arena(let off) = p.slot, let src = t.storage?.bytes.baseAddress {
                (arena + off).copyMemory(from: src, byteCount: p.spec.byteCount)
            }
        }
    }

    private func execute(_ inputs: [Tensor]) {
        copyIn(inputs)
        for (k, step) in plan.steps.enumerated() {
            // NaN in every scratch byte first, so that a kernel reading scratch it did not write shows
            if Self.checkFinite { memset(scratch, 0xff, scratchStride * pool.threads) }
            step.kernel.run(KernelIO(ins: inTable + inStart[k], outs: outTable + outStart[k], pool: pool,
                                     scratchBase: scratch, scratchStride: scratchStride))
            if Self.checkFinite { reportNonFinite(k, step) }
        }
    }

    /// `SCM_CHECK_FINITE=1` (a debugging aid, off by default): every scratch byte is set to 0xff
    /// (NaN as float and as double) before each step, and after it every float32
    /// output is scanned, and the first three steps of each run whose outputs hold NaN or infinity
    /// are named on stderr with the count and the first such value. Steps run in order, so the
    /// first one named is where a non-finite value is born.
    static var checkFinite: Bool { RuntimeOverrides.checkFinite }

    private func reportNonFinite(_ k: Int, _ step: Step) {
        if k == 0 { reported = 0 }
        guard reported < 3 else { return }
        for (i, slot) in step.outputs.enumerated() where step.outputSpecs[i].dtype == .float {
            let f = Session.address(slot, arena: arena, plan: plan).assumingMemoryBound(to: Float.self)
            var count = 0, first: Float = 0
            for e in 0..<step.outputSpecs[i].count where !f[e].isFinite {
                if count == 0 { first = f[e] }
                count += 1
            }
            guard count > 0 else { continue }
            reported += 1
            FileHandle.standardError.write(Data("SCM_CHECK_FINITE: step \(k) \(step.label) (\(step.opType)): output \(i) \(step.outputSpecs[i].shape) has \(count) non-finite values (first \(first))\n".utf8))
            return
        }
    }
}
