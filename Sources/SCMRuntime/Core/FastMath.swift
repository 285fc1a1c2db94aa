import CKernels
/// Vectorized float32 exp (Cephes' range reduction and degree-5 polynomial; relative error about
/// 2e-7 on [-87, 88]). Every element goes through the same 8-lane code, tails included, so a
/// value's result never depends on its position in a buffer.
@inline(__always) func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
    var x = v
    x.replace(with: -87.33654, where: x .< -87.33654)
    x.replace(with: 88.37626, where: x .> 88.37626)
    // n = round(x / ln 2) by the 1.5 * 2^23 trick: plain adds and bit casts, so it vectorizes.
    let magic: Float = 12582912
    let t = x * 1.44269504088896341 + magic
    let fx = t - magic
    let n = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(SIMD8<Float>(repeating: magic), to: SIMD8<Int32>.self)
    x = x - fx * 0.693359375 + fx * 2.12194440e-4
    let z = x * x
    var y = SIMD8<Float>(repeating: 1.9875691500e-4)
    y = y * x + 1.3981999507e-3
    y = y * x + 8.3334519073e-3
    y = y * x + 4.1665795894e-2
    y = y * x + 1.6666665459e-1
    y = y * x + 5.0000001201e-1
    y = y * z + x + 1
    let scale = unsafeBitCast((n &+ 127) &<< 23, to: SIMD8<Float>.self)
    // NaN in, NaN out (the clamp would hide it).
    return (y * scale).replacing(with: v, where: v .!= v)
}

/// Applies an 8-lane function to `count` floats; the tail is padded into one more vector.
@inline(__always) func map8(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int,
                            _ f: (SIMD8<Float>) -> SIMD8<Float>) {
    var i = 0
    while i + 8 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: f(v), as: SIMD8<Float>.self)
        i += 8
    }
    if i < count {
        var v = SIMD8<Float>(repeating: 0)
        for k in 0..<(count - i) { v[k] = x[i + k] }
        let r = f(v)
        for k in 0..<(count - i) { y[i + k] = r[k] }
    }
}

/// exp of one float through the vector code (same result as inside a vector).
@inline(__always) func exp1(_ x: Float) -> Float { exp8(SIMD8(repeating: x))[0] }

/// The logistic function through `exp8` (the Sigmoid kernel's formula).
@inline(__always) func sigmoid8(_ v: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + exp8(-v)) }

/// SiLU, x * sigmoid(x), with the same rounding as a Mul of x and the Sigmoid kernel's output.
@inline(__always) func silu8(_ v: SIMD8<Float>) -> SIMD8<Float> { v * sigmoid8(v) }

/// Sum of `count` floats (minus `c`, squared when `squared`): 16-lane float partial sums over
/// blocks of 512 elements, blocks added in double (`scm_block_sum`). Fixed order, so the result
/// depends only on the data.
@inline(__always) func blockSum(_ x: UnsafePointer<Float>, _ count: Int, minus c: Float = 0, squared: Bool = false) -> Double {
    scm_block_sum(x, Int64(count), c, squared ? 1 : 0)
}
