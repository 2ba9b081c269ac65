// The libFuzzer driver of Sources/GLM5Fuzz: GLM5_FUZZ_TARGET names the target (Tests/fuzz/<name>/).
// Built by `make fuzz` with -sanitize=fuzzer,address -DGLM5_LIBFUZZER, where libFuzzer supplies
// main(); built plainly (swift build), it is a stub that says how to build it.

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
    print("glm5-fuzz: set GLM5_FUZZ_TARGET to one of: \(fuzzTargets.map(\.name).joined(separator: ", "))")
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

// SwiftPM links an executable with main renamed to <module>_main (so that tests can link the
// module); this module has no top-level code, so that symbol is defined here and hands over to
// libFuzzer's driver, as libFuzzer's own main() would.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@_cdecl("glm5_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
  var c = argc
  var v = argv
  return LLVMFuzzerRunDriver(&c, &v, fuzzTestOneInput)
}

#else

@main
enum FuzzDriverStub {
  static func main() {
    print("glm5-fuzz is a libFuzzer driver: build and run it with `make fuzz` (targets: \(fuzzTargets.map(\.name).joined(separator: ", ")))")
    exit(2)
  }
}

#endif
