import Testing
import TestSupport
import SCMGraph
import SCMRuntime
import SCMTrigFlow
@testable import SCMOptimize

@Suite("fuse-adn")
struct AdaptiveGroupNormFusionTests {
    let n = 2, c = 6, g = 3

    func inits() throws -> [Tensor] {
        [try tensor([c], seed: 1, name: "gs"), try tensor([c], seed: 2, name: "gb"),
         try tensor([n, c, 1, 1], seed: 3, name: "scale"), try tensor([n, c, 1, 1], seed: 4, name: "shift"),
         try tensor([c, 1, 1], seed: 5, name: "gamma"), try tensor([c, 1, 1], seed: 6, name: "beta"),
         try tensor([g], seed: 7, name: "ins"), try tensor([g], seed: 8, name: "inb"),
         try Tensor(shape: [3], scalars: [Int64(0), Int64(g), Int64(-1)], name: "grouped"),
         try Tensor(shape: [4], scalars: [Int64(n), Int64(c), Int64(5), Int64(5)], name: "back")]
    }

    func check(_ m: Model, feeds: [String: Tensor], expect: [String], bitwise: Bool) throws {
        let (out, changes) = try apply(FuseAdaptiveGroupNorm(), m)
        #expect(ops(out) == expect, "\(changes)")
        #expect(out.opsetVersion("ai.scm") == 1)
        let a = try run(out, feeds), b = try run(m, feeds)
        if bitwise { #expect(a == b) } else { #expect(relativeError(a, b) <= 1e-6) }
    }

    @Test("GroupNormalization * runtime scale + runtime shift, then SiLU: one node, bitwise equal")
    func onnxEncodingRuntimeOperands() throws {
        let nodes = [Node("GroupNormalization", inputs: ["x", "gs", "gb"], outputs: ["gn"],
                          attributes: [Attribute("num_groups", .int(g)), Attribute("epsilon", .float(1e-5))]),
                     Node("Mul", inputs: ["s", "gn"], outputs: ["m"]), Node("Add", inputs: ["m", "sh"], outputs: ["a"])]
            + siluNodes("a", "y")
        let m = model(nodes, inits: try inits(), inputs: [floatInput("x", [n, c, 5, 5]), floatInput("s", [n, c, 1, 1]),
                                                           floatInput("sh", [n, c, 1, 1])], outputs: ["y"])
        let feeds = ["x": try tensor([n, c, 5, 5], seed: 9), "s": try tensor([n, c, 1, 1], seed: 10), "sh": try tensor([n, c, 1, 1], seed: 11)]
        try check(m, feeds: feeds, expect: ["ai.scm:AdaptiveGroupNorm"], bitwise: true)
    }

    @Test("PyTorch's Reshape/InstanceNorm/Reshape * gamma + beta, then ADN: constants flushed into scale/bias")
    func pytorchEncoding() throws {
        let nodes = [Node("Reshape", inputs: ["x", "grouped"], outputs: ["r"]),
                     Node("InstanceNormalization", inputs: ["r", "ins", "inb"], outputs: ["i"]),
                     Node("Reshape", inputs: ["i", "back"], outputs: ["gn"]),
                     Node("Mul", inputs: ["gn", "gamma"], outputs: ["m1"]), Node("Add", inputs: ["m1", "beta"], outputs: ["a1"]),
                     Node("Mul", inputs: ["a1", "scale"], outputs: ["m2"]), Node("Add", inputs: ["shift", "m2"], outputs: ["y"])]
        let m = model(nodes, inits: try inits(), inputs: [floatInput("x", [n, c, 5, 5])], outputs: ["y"])
        try check(m, feeds: ["x": try tensor([n, c, 5, 5], seed: 12)], expect: ["ai.scm:AdaptiveGroupNorm"], bitwise: false)
    }

    @Test("A value read twice stops the chain; opset-18 per-group scale is expanded")
    func stopsAtSharedValue() throws {
        let nodes = [Node("GroupNormalization", inputs: ["x", "ins", "inb"], outputs: ["gn"], attributes: [Attribute("num_groups", .int(g))]),
                     Node("Mul", inputs: ["gn", "scale"], outputs: ["m"]), Node("Add", inputs: ["m", "m"], outputs: ["y"])]
        let m = model(nodes, inits: try inits(), inputs: [floatInput("x", [n, c, 5, 5])], outputs: ["y"], opset: 18)
        try check(m, feeds: ["x": try tensor([n, c, 5, 5], seed: 13)], expect: ["ai.scm:AdaptiveGroupNorm", "Add"], bitwise: true)
    }

    @Test("A Mul that broadcasts over space is not absorbed")
    func spatialOperandStays() throws {
        let nodes = [Node("GroupNormalization", inputs: ["x", "gs", "gb"], outputs: ["gn"], attributes: [Attribute("num_groups", .int(g))]),
                     Node("Mul", inputs: ["gn", "w"], outputs: ["y"])]
        let m = model(nodes, inits: try inits() + [try tensor([5, 5], seed: 14, name: "w")], inputs: [floatInput("x", [n, c, 5, 5])], outputs: ["y"])
        try check(m, feeds: ["x": try tensor([n, c, 5, 5], seed: 15)], expect: ["ai.scm:AdaptiveGroupNorm", "Mul"], bitwise: true)
    }
}

@Suite("fuse-conv")
struct ConvEpilogueFusionTests {
    @Test("Conv + residual Add + SiLU: one FusedConv, bitwise equal; a bare Conv stays")
    func residualSilu() throws {
        let nodes = [Node("Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: [Attribute("pads", .ints([1, 1, 1, 1]))]),
                     Node("Add", inputs: ["x", "c"], outputs: ["r"])] + siluNodes("r", "h")
            + [Node("Conv", inputs: ["h", "w"], outputs: ["y"], attributes: [Attribute("pads", .ints([1, 1, 1, 1]))])]
        let m = model(nodes, inits: [try tensor([4, 4, 3, 3], seed: 1, name: "w"), try tensor([4], seed: 2, name: "b")],
                      inputs: [floatInput("x", [2, 4, 6, 6])], outputs: ["y"])
        let (out, _) = try apply(FuseConvEpilogue(), m)
        #expect(ops(out) == ["ai.scm:FusedConv", "Conv"])
        #expect(out.graph.nodes[0].inputs == ["x", "w", "b", "x"])
        let feeds = ["x": try tensor([2, 4, 6, 6], seed: 3)]
        #expect(try run(out, feeds) == run(m, feeds))
    }

    @Test("Conv without bias + SiLU; an Add that broadcasts is not a residual")
    func siluOnly() throws {
        let nodes = [Node("Conv", inputs: ["x", "w"], outputs: ["c"]), Node("Add", inputs: ["c", "b"], outputs: ["r"])] + siluNodes("r", "y")
        let m = model(nodes, inits: [try tensor([4, 4, 1, 1], seed: 1, name: "w"), try tensor([4, 1, 1], seed: 2, name: "b")],
                      inputs: [floatInput("x", [1, 4, 3, 3])], outputs: ["y"])
        let (out, _) = try apply(FuseConvEpilogue(), m)
        #expect(ops(out) == ["Conv", "Add", "Sigmoid", "Mul"])
        let m2 = model([Node("Conv", inputs: ["x", "w"], outputs: ["c"])] + siluNodes("c", "y"),
                       inits: [try tensor([4, 4, 1, 1], seed: 1, name: "w")], inputs: [floatInput("x", [1, 4, 3, 3])], outputs: ["y"])
        let (out2, _) = try apply(FuseConvEpilogue(), m2)
        #expect(ops(out2) == ["ai.scm:FusedConv"])
        let feeds = ["x": try tensor([1, 4, 3, 3], seed: 4)]
        #expect(try run(out2, feeds) == run(m2, feeds))
    }
}

@Suite("fuse-gemm")
struct MatMulAddFusionTests {
    @Test("2-D MatMul + bias becomes Gemm; 3-D MatMul stays")
    func gemm() throws {
        let m = model([Node("MatMul", inputs: ["x", "w"], outputs: ["p"]), Node("Add", inputs: ["b", "p"], outputs: ["y"]),
                       Node("MatMul", inputs: ["z", "w"], outputs: ["q"]), Node("Add", inputs: ["q", "b"], outputs: ["y2"])],
                      inits: [try tensor([5, 7], seed: 1, name: "w"), try tensor([7], seed: 2, name: "b")],
                      inputs: [floatInput("x", [3, 5]), floatInput("z", [2, 3, 5])], outputs: ["y", "y2"])
        let (out, _) = try apply(FuseMatMulAdd(), m)
        #expect(ops(out) == ["Gemm", "MatMul", "Add"])
        let feeds = ["x": try tensor([3, 5], seed: 3), "z": try tensor([2, 3, 5], seed: 4)]
        #expect(relativeError(try run(out, feeds), try run(m, feeds)) <= 1e-6)
    }
}

@Suite("pipeline")
struct PipelineTests {
    @Test("The committed tiny TrigFlow model: every step specialized and optimized equals the original")
    func tinyModel() throws {
        let m = try ModelFile.load(path: repoRoot + "/models/tiny-trigflow.onnx")
        let meta = try TrigFlowMetadata(m)
        let x = try tensor([2, 1, 8, 8], seed: 21, name: "x")
        for t in try meta.schedule(steps: 4) {
            let tt = try Tensor(shape: [2], scalars: [t, t], name: "t")
            let (opt, reports) = try Optimizer.optimize(m, t: t, batch: 2)
            #expect(!ops(opt).contains("Sin") && !ops(opt).contains("Cos"))
            #expect(reports.map(\.pass) == ["specialize"] + Optimizer.defaultPipeline)
            let plan = try Compiler.compile(m, shapes: ["x": TensorSpec(.float, [2, 1, 8, 8]), "t": TensorSpec(.float, [2])])
            let reference = try plan.makeSession(threads: 1).run([x, tt]).map { Output(shape: $0.shape, values: $0.scalars(as: Float.self)!) }
            #expect(relativeError(try run(opt, ["x": x]), reference) <= 1e-5)
        }
    }

    @Test("Unknown pass names and non-TrigFlow interfaces are clear errors")
    func errors() throws {
        #expect(throws: OptimizeError.self) { try Optimizer.pipeline(["fold", "bogus"]) }
        let m = model([Node("Relu", inputs: ["x"], outputs: ["y"])], inits: [], inputs: [floatInput("x", [2])], outputs: ["y"])
        #expect(throws: OptimizeError.self) { try Optimizer.optimize(m, t: 1, batch: 1) }
    }
}
