// The libFuzzer driver of Sources/GLM5Fuzz: GLM5_FUZZ_TARGET names the target (Tests/fuzz/<name>/).
// Built by `make fuzz` with -sanitize=fuzzer,address -parse-as-library -DGLM5_LIBFUZZER, where
// libFuzzer supplies main(); built plainly (swift build), it only says how to build it.

import GLM5Fuzz

#if canImport(Glibc)
import Glibc
#endif

#if GLM5_LIBFUZZER

nonisolated(unsafe) var selected: FuzzTarget? = nil

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
  let name = getenv("GLM5_FUZZ_TARGET").map { String(cString: $0) } ?? ""
  guard let t = fuzzTarget(named: name) else {
    fputs("glm5-fuzz: set GLM5_FUZZ_TARGET to one of: \(fuzzTargets.map(\.name).joined(separator: ", "))\n", stderr)
    exit(2)
  }
  selected = t
  // Warm up what targets load once (fixture model, tiny-dsa's config) outside the timed inputs.
  t.run(UnsafeRawBufferPointer(start: nil, count: 0))
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  selected!.run(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

#else

fputs("glm5-fuzz is a libFuzzer driver: build and run it with `make fuzz` (targets: \(fuzzTargets.map(\.name).joined(separator: ", ")))\n", stderr)
exit(2)

#endif
