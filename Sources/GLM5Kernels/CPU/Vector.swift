// Vector helpers for the attention inner loops (MLA scores and weighted sums over the latent
// cache, DSA indexer scores). Both are fixed-order: a result depends only on its inputs, never on
// the batch, the thread or the caller's loop structure, so they keep the library row-invariant.
// Inlinable: the attention and indexer loops call them per key and head, across modules.

extension Kernels {
  /// Σ_i a[i] · b[i]. Fixed order:
  ///   four 8-lane accumulators take blocks of 32 (acc_j += a[32q + 8j ..< +8] ⊙ b[…], fma);
  ///   the remaining whole 8-blocks go to acc0, acc1, acc2 in turn;
  ///   s = reduce8((acc0 + acc1) + (acc2 + acc3)), then s = fma(a[i], b[i], s) for the last n mod 8.
  @inlinable public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var i = 0
    while i + 32 <= n {
      a0.addProduct(loadX(a, i), loadX(b, i))
      a1.addProduct(loadX(a, i + 8), loadX(b, i + 8))
      a2.addProduct(loadX(a, i + 16), loadX(b, i + 16))
      a3.addProduct(loadX(a, i + 24), loadX(b, i + 24))
      i += 32
    }
    if i + 8 <= n { a0.addProduct(loadX(a, i), loadX(b, i)); i += 8 }
    if i + 8 <= n { a1.addProduct(loadX(a, i), loadX(b, i)); i += 8 }
    if i + 8 <= n { a2.addProduct(loadX(a, i), loadX(b, i)); i += 8 }
    var s = reduce8((a0 + a1) + (a2 + a3))
    while i < n {
      s = s.addingProduct(a[i], b[i])
      i += 1
    }
    return s
  }

  /// y[i] = fma(a, x[i], y[i]) for i < n: each element independently, so the result is bitwise
  /// the scalar loop `y[i] = y[i].addingProduct(a, x[i])`.
  @inlinable public static func axpy(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    let av = SIMD8<Float>(repeating: a)
    var i = 0
    while i + 32 <= n {
      var y0 = loadX(UnsafePointer(y), i), y1 = loadX(UnsafePointer(y), i + 8)
      var y2 = loadX(UnsafePointer(y), i + 16), y3 = loadX(UnsafePointer(y), i + 24)
      y0.addProduct(av, loadX(x, i))
      y1.addProduct(av, loadX(x, i + 8))
      y2.addProduct(av, loadX(x, i + 16))
      y3.addProduct(av, loadX(x, i + 24))
      store8(y + i, y0); store8(y + i + 8, y1); store8(y + i + 16, y2); store8(y + i + 24, y3)
      i += 32
    }
    while i + 8 <= n {
      var v = loadX(UnsafePointer(y), i)
      v.addProduct(av, loadX(x, i))
      store8(y + i, v)
      i += 8
    }
    while i < n {
      y[i] = y[i].addingProduct(a, x[i])
      i += 1
    }
  }
}
