// Heap buffers of Float for activations and caches. Allocation failure is an error, not a trap:
// a host asking for a huge session gets GLM5_ERR_OUT_OF_MEMORY.

#if canImport(Glibc)
import Glibc
#endif

public final class FloatBuffer: @unchecked Sendable {
  public private(set) var pointer: UnsafeMutablePointer<Float>
  public private(set) var count: Int

  /// `count` zeroed floats.
  public init(count: Int, what: @autoclosure () -> String = "buffer") throws(GLM5Error) {
    let n = max(count, 1)
    let (bytes, o) = n.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
    guard !o, let p = calloc(1, bytes) else {
      throw .outOfMemory("cannot allocate \(count) floats for \(what())")
    }
    pointer = p.assumingMemoryBound(to: Float.self)
    self.count = count
  }

  /// Grow to `newCount` floats, keeping the contents (new tail zeroed).
  public func grow(to newCount: Int, what: @autoclosure () -> String = "buffer") throws(GLM5Error) {
    guard newCount > count else { return }
    let (bytes, o) = newCount.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
    guard !o, let p = realloc(pointer, bytes) else {
      throw .outOfMemory("cannot grow \(what()) to \(newCount) floats")
    }
    let fp = p.assumingMemoryBound(to: Float.self)
    (fp + count).initialize(repeating: 0, count: newCount - count)
    pointer = fp
    count = newCount
  }

  public subscript(i: Int) -> Float {
    get { pointer[i] }
    set { pointer[i] = newValue }
  }

  public func fill(_ v: Float) { pointer.update(repeating: v, count: count) }

  deinit { free(pointer) }
}
