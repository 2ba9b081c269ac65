// swift-tools-version:6.1
//
// glm5: GLM-5 (Hugging Face `glm_moe_dsa`) inference on CPUs, embedded through a C ABI.
//
// Dependency direction (the compiler enforces it):
//   GLM5CAPI -> GLM5Engine -> GLM5Model -> GLM5Kernels -> GLM5Core -> (CBLAS, CZstd, CGLM5)
//   GLM5Engine -> GLM5Tokenizer -> GLM5Core
//   GLM5Kernels -> CGLM5Kernels (C kernels with intrinsics)
// Only GLM5CAPI has C exports; it is the single target of the dynamic product `libglm5.so`.
import PackageDescription

let packageDir = Context.packageDirectory

// x86-64-v3 (AVX2 + FMA, every machine we run on; ../shared/docs/toolchain.md §5): without a
// target CPU, SIMD FMAs become per-lane libcalls. What differs between machines (Intel's
// subnormal assists) is chosen at run time (QuantLanes.swift). Kernels are also built with -O in
// debug so that tests of real models are not 30-1300x slower.
let cpuFlags: [SwiftSetting] = [
  .unsafeFlags(["-Xcc", "-march=x86-64-v3"]),
]
let fastInDebug: [SwiftSetting] = [
  .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
  name: "glm5",
  products: [
    // The C library: libglm5.so, only `glm5_*` symbols exported (Sources/GLM5CAPI/exports.map),
    // Swift runtime linked statically (see Makefile: -Xswiftc -static-stdlib).
    .library(name: "glm5", type: .dynamic, targets: ["GLM5CAPI"]),
    // Swift users link the engine directly.
    .library(name: "GLM5Engine", targets: ["GLM5Engine"]),
    .executable(name: "glm5-cli", targets: ["glm5-cli"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    // HTTP for `glm5 serve` (the CLI only; libglm5.so does not link it). No default traits: the
    // server needs neither swift-configuration nor full Foundation.
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.14.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
    // GET /metrics of `glm5 serve` (its swift-metrics and swift-atomics are already Hummingbird's).
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
  ],
  targets: [
    .target(name: "CGLM5", path: "Sources/CGLM5"),
    // Hand-written x86 kernels (INT4), AVX2 + FMA baseline; no fp contraction beyond the explicit FMAs.
    .target(
      name: "CGLM5Kernels", path: "Sources/CGLM5Kernels",
      cSettings: [.unsafeFlags(["-O3", "-march=x86-64-v3", "-ffp-contract=off", "-fno-math-errno"])]
    ),
    .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CZstd", path: "Sources/CZstd", providers: [.apt(["libzstd-dev"])]),
    .target(name: "GLM5Core", dependencies: ["CBLAS", "CZstd"], swiftSettings: cpuFlags + fastInDebug),
    .target(name: "GLM5Kernels", dependencies: ["GLM5Core", "CBLAS", "CGLM5Kernels"], swiftSettings: cpuFlags + fastInDebug),
    .target(name: "GLM5Model", dependencies: ["GLM5Core", "GLM5Kernels"], swiftSettings: cpuFlags + fastInDebug),
    // HF tokenizer.json (byte-level BPE, regex pre-tokenizers, added tokens); no model knowledge.
    .target(name: "GLM5Tokenizer", dependencies: ["GLM5Core"], swiftSettings: cpuFlags + fastInDebug),
    .target(name: "GLM5Engine", dependencies: ["GLM5Model", "GLM5Tokenizer"], swiftSettings: cpuFlags + fastInDebug),
    // The request schema of `glm5 serve` (parsing and JSON writing), a library so that GLM5Fuzz reaches it.
    .target(name: "GLM5Serve", dependencies: ["GLM5Core", "GLM5Engine"], swiftSettings: cpuFlags + fastInDebug),
    // The fuzz targets: every parser of outside data, as a table of functions over bytes. The
    // libFuzzer driver glm5-fuzz runs them (`make fuzz`); FuzzCorpusTests replays the corpora.
    .target(name: "GLM5Fuzz", dependencies: ["GLM5Core", "GLM5Model", "GLM5Tokenizer", "GLM5Engine", "GLM5Serve"],
            swiftSettings: cpuFlags + fastInDebug),
    // LLVMFuzzerTestOneInput over GLM5Fuzz; only useful when built by `make fuzz` (-sanitize=fuzzer).
    .executableTarget(name: "glm5-fuzz", dependencies: ["GLM5Fuzz"], swiftSettings: cpuFlags),
    .target(
      name: "GLM5CAPI",
      dependencies: ["CGLM5", "GLM5Engine", "GLM5Tokenizer"],
      exclude: ["exports.map"],
      swiftSettings: cpuFlags,
      linkerSettings: [
        .unsafeFlags([
          "-Xlinker", "--version-script=\(packageDir)/Sources/GLM5CAPI/exports.map",
          "-Xlinker", "-z", "-Xlinker", "nodelete",
          // The soname carries GLM5_ABI_VERSION (include/glm5.h; `make test-c` checks they
          // agree): `make install` puts the file as libglm5.so.1 with libglm5.so -> libglm5.so.1,
          // and `make build` links .build/release/libglm5.so.1 -> libglm5.so for hosts linked here.
          "-Xlinker", "-soname", "-Xlinker", "libglm5.so.1",
        ]),
      ]
    ),
    .executableTarget(
      name: "glm5-cli",
      dependencies: [
        "GLM5Engine",
        "GLM5Tokenizer",
        "GLM5Serve",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      swiftSettings: cpuFlags
    ),
    .testTarget(
      name: "GLM5Tests",
      dependencies: ["GLM5Engine", "GLM5Tokenizer", "GLM5Fuzz"],
      swiftSettings: cpuFlags + fastInDebug
    ),
  ]
)
