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
    HugePages.advise(p, bytes)
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
    HugePages.advise(p, bytes)
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

/// Transparent huge pages for large heap buffers (the latent, rope-key and indexer-key caches of
/// long sessions): sparse attention reads rows scattered over a layer's whole cache, and with 4 KiB
/// pages nearly every selected row is a TLB miss. madvise(MADV_HUGEPAGE) on the buffer's 2 MiB-aligned
/// interior (Linux with THP in "madvise" or "always" mode; elsewhere a no-op). Only for buffers of
/// at least `minBytes`: a huge page is resident as a whole once touched, so a growing buffer may hold
/// up to 2 MiB more than it has written (at most a quarter of such a buffer).
/// Measured: 2048 rows selected at random from 8192, one thread, from DRAM: the weighted sum
/// 1.17-1.28x faster, the scores 1.04-1.10x (docs/performance.md).
public enum HugePages {
  public static let minBytes = 8 << 20

  static func advise(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
    #if os(Linux)
    guard bytes >= minBytes else { return }
    let huge = 2 << 20
    let start = (Int(bitPattern: p) + huge - 1) & ~(huge - 1), end = (Int(bitPattern: p) + bytes) & ~(huge - 1)
    guard end > start, let a = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(a, end - start, Int32(MADV_HUGEPAGE))  // advice only: a refusal changes nothing
    #endif
  }
}

public typealias FloatBuffer = HeapBuffer<Float>
public typealias Int32Buffer = HeapBuffer<Int32>
public typealias ByteBuffer = HeapBuffer<UInt8>

extension Array {
  /// Room for at least `need` elements, growing geometrically as appends would (so that calls
  /// reserving a little more each time stay linear), with exhaustion reported as out-of-memory
  /// instead of a trap. Swift's array allocation cannot fail softly, so the same bytes (and room
  /// for the array's header) are mapped first, as malloc maps a large block, and given back: a
  /// mapping the address-space limit or the overcommit check refuses is refused here. (Not
  /// malloc + free: the optimizer removes that pair and assumes it succeeded.) Another thread
  /// could take the memory in between; for what this guards against (a count a host made huge,
  /// an address-space limit) the answer is the same.
  public mutating func reserveFallibly(_ need: Int, what: @autoclosure () -> String) throws(GLM5Error) {
    guard need > capacity else { return }
    let n = Swift.max(need, 2 * capacity)
    let (bytes, o) = n.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
    func fail() -> GLM5Error { .outOfMemory("cannot allocate \(n) \(Element.self) values for \(what())") }
    guard !o, bytes < Int.max / 2 else { throw fail() }
    // Small blocks come from malloc's heap, where a failure means every other allocation of the
    // call would fail too; the probe (two system calls) is for the large ones.
    if bytes < 1 << 16 { reserveCapacity(n); return }
    let p = mmap(nil, bytes + 64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw fail() }
    munmap(p, bytes + 64)
    reserveCapacity(n)
  }
}
