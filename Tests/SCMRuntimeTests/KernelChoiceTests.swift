import Testing
@testable import SCMRuntime

@Suite("Kernel choice")
struct KernelChoiceTests {
    func geometry(n: Int = 4, c: Int, m: Int, k: Int = 3, stride: Int = 1, pad: Int = 1, group: Int = 1, size: Int = 8) -> ConvGeometry {
        let out = (size + 2 * pad - k) / stride + 1
        let win = Window2D(kh: k, kw: k, sh: stride, sw: stride, dh: 1, dw: 1, padTop: pad, padLeft: pad, padBottom: pad, padRight: pad)
        return ConvGeometry(n: n, c: c, h: size, w: size, m: m, group: group, oh: out, ow: out, win: win)
    }

    @Test("Conv: Winograd for wide 3x3 stride-1 layers, then direct, then SGEMM; grouped convolutions on SGEMM only")
    func conv() {
        // The environment's comparison overrides are off in the test run.
        guard RuntimeOverrides.directConv, RuntimeOverrides.winograd == -1 else { return }
        #expect(KernelChoice.conv(geometry(c: 16, m: 16), constantWeights: true) == [.winograd, .direct, .gemm])
        #expect(KernelChoice.conv(geometry(c: 8, m: 16), constantWeights: true) == [.direct, .gemm])
        #expect(KernelChoice.conv(geometry(c: 16, m: 16, stride: 2), constantWeights: true) == [.direct, .gemm])
        #expect(KernelChoice.conv(geometry(c: 16, m: 16, k: 1, pad: 0), constantWeights: true) == [.direct, .gemm])
        #expect(KernelChoice.conv(geometry(c: 16, m: 16, group: 2), constantWeights: true) == [.gemm])
        // Weights given at run time: Winograd only when the batch's tiles outnumber the transform's cost.
        #expect(KernelChoice.conv(geometry(n: 1, c: 16, m: 16, size: 8), constantWeights: false) == [.direct, .gemm])
        #expect(KernelChoice.conv(geometry(n: 4, c: 16, m: 16, size: 8), constantWeights: false) == [.winograd, .direct, .gemm])
    }

    @Test("Transposed convolution and weight gradient: the direct kernels for one group")
    func others() {
        guard RuntimeOverrides.directConvTranspose, RuntimeOverrides.directWeightGrad else { return }
        #expect(KernelChoice.directConvTranspose(geometry(c: 8, m: 8)))
        #expect(!KernelChoice.directConvTranspose(geometry(c: 8, m: 8, group: 2)))
        #expect(KernelChoice.directWeightGrad(group: 1) && !KernelChoice.directWeightGrad(group: 4))
    }
}
