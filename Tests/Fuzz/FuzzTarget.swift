import SCMGraph
import SCMRuntime

/// The libFuzzer target: bytes as a model file through everything a service does with one.
///
/// `tools/fuzz.sh` compiles this module and the library with `-sanitize=fuzzer,address` and links
/// it with lld into `.build/fuzz/scm-fuzz`; in the ordinary build it is a plain library that no
/// product links. Each input is loaded (wire pre-scan, protobuf-c, payload checks, verification,
/// resource limits), written back through our serializer and loaded again, compiled with every
/// graph input at its declared shape (symbolic dims 2) and given as a value the compiler may pin,
/// and run once on one thread on deterministic inputs. Every error is expected; a crash, an
/// AddressSanitizer report, a hang or an allocation past libFuzzer's limits is a finding.
public enum FuzzTarget {
    /// Tight limits: the fuzzer looks for bugs, not for the largest model that fits.
    public static let limits: ResourceLimits = {
        var l = ResourceLimits()
        l.maxFileBytes = 1 << 20
        l.maxNodes = 4096
        l.maxGraphDepth = 1024
        l.maxTensorElements = 1 << 20
        l.maxInitializerBytes = 16 << 20
        l.maxActivationBytes = 64 << 20
        l.maxExternalBytes = 0
        return l
    }()

    /// Runs one input. Never throws: every error the library reports is a correct answer.
    public static func run(_ bytes: [UInt8]) {
        guard let model = try? ModelFile.load(bytes: bytes, source: "fuzz", limits: limits) else { return }
        if let again = try? ModelFile.serialize(model).bytes {
            _ = try? ModelFile.load(bytes: again, source: "fuzz (saved)", limits: limits)
        }
        var shapes: [String: TensorSpec] = [:], values: [String: Tensor] = [:]
        let inits = Set(model.graph.initializers.map(\.meta.name))
        for vi in model.graph.inputs where !inits.contains(vi.name) {
            guard let dtype = vi.type?.elementType, (dtype.bitWidth ?? 0) >= 8, dtype != .string, let dims = vi.type?.shape, dims.count <= 8 else { return }
            let shape = dims.map { $0.value ?? 2 }
            guard shape.allSatisfy({ (0...4096).contains($0) }), let n = ShapeMath.elementCount(shape), n <= 1 << 16 else { return }
            let spec = TensorSpec(dtype, shape)
            shapes[vi.name] = spec
            values[vi.name] = input(spec, seed: values.count)
        }
        guard let plan = try? Compiler.compile(model, shapes: shapes, values: values, limits: limits) else { return }
        let session = plan.makeSession(threads: 1)
        _ = try? session.run(plan.inputs.compactMap { values[$0.name] })
    }

    /// A deterministic tensor of `spec`: small integers in every dtype (valid indices and
    /// shapes for most ops), so runs reach the kernels.
    static func input(_ spec: TensorSpec, seed: Int) -> Tensor? {
        let storage = TensorStorage(byteCount: spec.byteCount) { raw in
            var state = UInt32(truncatingIfNeeded: seed &* 2_654_435_761 &+ 1)
            for i in 0..<raw.count {
                state = state &* 1_664_525 &+ 1_013_904_223
                raw[i] = i % max((spec.dtype.bitWidth ?? 8) / 8, 1) == 0 ? UInt8(truncatingIfNeeded: state >> 29) : 0
            }
        }
        return try? Tensor(dtype: spec.dtype, shape: spec.shape, data: .bytes(storage))
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func scmFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
