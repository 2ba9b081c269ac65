// Heap buffers for activations, caches, records and owned weights. Allocation failure is an
// error, not a trap: a host asking for a huge session gets GLM5_ERR_OUT_OF_MEMORY.

#if canImport(Glibc)
import Glibc
#endif

/// `count` elements of a trivial type on the C heap, zeroed, growable.
public final class HeapBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
  public private(set) var pointer: UnsafeMutablePointer<Element>
  public private(set) var count: Int

  /// `count` zeroed elements.
  public init(count: Int, what: @autoclosure () -> String = "buffer") throws(GLM5Error) {
    let n = max(count, 1)
    let (bytes, o) = n.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
    guard !o, count >= 0, let p = calloc(1, bytes) else {
      throw .outOfMemory("cannot allocate \(count) \(Element.self) values for \(what())")
    }
    guard MemoryHeadroom.available() else {
      free(p)
      throw .outOfMemory("\(count) \(Element.self) values for \(what()) leave less than \(MemoryHeadroom.bytes >> 20) MiB free")
    }
    pointer = p.bindMemory(to: Element.self, capacity: n)
    self.count = count
  }

  /// Grow to `newCount` elements, keeping the contents (new tail zeroed).
  public func grow(to newCount: Int, what: @autoclosure () -> String = "buffer") throws(GLM5Error) {
    guard newCount > count else { return }
    let (bytes, o) = newCount.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
    guard !o, let p = realloc(pointer, bytes) else {
      throw .outOfMemory("cannot grow \(what()) to \(newCount) \(Element.self) values")
    }
    guard MemoryHeadroom.available() else {
      // Back to the old size (a shrinking realloc keeps the contents): nothing changed.
      pointer = (realloc(p, max(count, 1) * MemoryLayout<Element>.stride) ?? p).bindMemory(to: Element.self, capacity: max(count, 1))
      throw .outOfMemory("growing \(what()) to \(newCount) \(Element.self) values would leave less than \(MemoryHeadroom.bytes >> 20) MiB free")
    }
    let fp = p.bindMemory(to: Element.self, capacity: newCount)
    memset(UnsafeMutableRawPointer(fp + count), 0, (newCount - count) * MemoryLayout<Element>.stride)
    pointer = fp
    count = newCount
  }

  public subscript(i: Int) -> Element {
    get { pointer[i] }
    set { pointer[i] = newValue }
  }

  public var bytes: UnsafeMutableRawBufferPointer {
    UnsafeMutableRawBufferPointer(start: pointer, count: count * MemoryLayout<Element>.stride)
  }

  public func fill(_ v: Element) { pointer.update(repeating: v, count: count) }

  deinit { free(pointer) }
}

public typealias FloatBuffer = HeapBuffer<Float>
public typealias Int32Buffer = HeapBuffer<Int32>
public typealias ByteBuffer = HeapBuffer<UInt8>
