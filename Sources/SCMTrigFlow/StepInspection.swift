import Foundation
import SCMGraph
import SCMOptimize
import SCMRuntime

/// What optimization does to a TrigFlow model at each step of an N-step schedule: node counts,
/// op histograms and planned activation memory before and after (`scm-inspect --steps N`).
public struct StepInspection: Codable, Sendable {
    /// One graph's shape in numbers.
    public struct GraphStats: Codable, Sendable {
        public var nodes: Int
        /// Node count per op type (`ai.scm:` prefix for our fused ops).
        public var ops: [String: Int]
        /// Peak planned activation memory of the compiled plan (bytes).
        public var arenaBytes: Int
        /// Floating-point operations per run of the compiled plan.
        public var flops: Int

        init(_ model: Model, context: PassContext) throws {
            nodes = model.graph.nodes.count
            var h: [String: Int] = [:]
            for n in model.graph.nodes { h[n.op.key, default: 0] += 1 }
            ops = h
            let plan = try Compiler.compile(model, shapes: context.inputShapes(of: model))
            arenaBytes = plan.arenaBytes
            flops = plan.flops
        }
    }

    public struct PassSummary: Codable, Sendable {
        public var pass: String
        public var nodesBefore: Int
        public var nodesAfter: Int
        public var changes: [String]
    }

    public struct Step: Codable, Sendable {
        public var index: Int
        public var t: Float
        public var after: GraphStats
        public var passes: [PassSummary]
    }

    public var model: String
    public var batch: Int
    public var schedule: [Float]
    public var before: GraphStats
    public var steps: [Step]

    /// Specializes and optimizes `model` for each time of `schedule` at batch size `batch`.
    public init(model: Model, name: String, schedule: [Float], batch: Int, passes: [String]? = nil,
                options: Optimizer.Options = Optimizer.Options()) throws {
        self.model = name
        self.batch = batch
        self.schedule = schedule
        // The input types at this batch size (x and t); each step's model keeps only x.
        let (_, context) = try Optimizer.stepSpecialization(model, t: nil, batch: batch)
        before = try GraphStats(model, context: context)
        steps = []
        for (i, t) in schedule.enumerated() {
            let (m, reports) = try Optimizer.optimize(model, t: t, batch: batch, passes: passes, options: options)
            steps.append(Step(index: i + 1, t: t, after: try GraphStats(m, context: context),
                              passes: reports.map { PassSummary(pass: $0.pass, nodesBefore: $0.nodesBefore, nodesAfter: $0.nodesAfter, changes: $0.changes) }))
        }
    }

    /// One JSON object (sorted keys).
    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        enc.keyEncodingStrategy = .convertToSnakeCase
        return (try? String(decoding: enc.encode(self), as: UTF8.self)) ?? "{}"
    }

    /// A human-readable report; `verbose` lists every rewrite.
    public func text(verbose: Bool = false) -> String {
        func hist(_ h: [String: Int]) -> String {
            h.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        var lines = ["\(model): \(schedule.count)-step schedule \(schedule.map { String($0) }.joined(separator: ", ")), batch \(batch)"]
        lines.append("before: \(before.nodes) nodes, activations \(before.arenaBytes) bytes, \(before.flops) FLOP")
        lines.append("  ops: \(hist(before.ops))")
        for s in steps {
            lines.append("step \(s.index) (t = \(s.t)): \(s.after.nodes) nodes, activations \(s.after.arenaBytes) bytes, \(s.after.flops) FLOP")
            lines.append("  ops: \(hist(s.after.ops))")
            for p in s.passes {
                lines.append("  \(p.pass): \(p.nodesBefore) -> \(p.nodesAfter) nodes, \(p.changes.count) change\(p.changes.count == 1 ? "" : "s")")
                if verbose { for c in p.changes { lines.append("    \(c)") } }
            }
        }
        return lines.joined(separator: "\n")
    }
}
