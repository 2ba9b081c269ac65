// config.json (ModelConfig), its quantization_config (QuantScheme) and generation_config.json
// (Model.generationEOS), read as Checkpoint and Model read them.

import GLM5Core
import GLM5Engine
import GLM5Model

/// config.json -> ModelConfig -> QuantScheme (when it declares one), and what loading derives.
@Sendable func fuzzConfig(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    let c = try ModelConfig(json: try JSON.parse(bytes))
    _ = c.fingerprint
    _ = c.numMoELayers
    if let q = c.quantization { _ = try QuantScheme.parse(q, source: "config.json") }
  }
}

/// tiny-dsa's config.json, parsed once: the quantization target puts its input into it.
let tinyConfig: [String: JSON] = {
  let path = fuzzFixtures + "/tiny-dsa/config.json"
  guard let b = try? readTextFile(path), let j = try? withBytes(b, { (p) throws(GLM5Error) -> JSON in try JSON.parse(p) }),
        let o = j.object else { fatalError("glm5 fuzz: cannot read \(path) (set GLM5_FUZZ_FIXTURES)") }
  return o
}()

/// A quantization_config object, inside an otherwise valid config.json.
@Sendable func fuzzQuantization(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    var o = tinyConfig
    o["quantization_config"] = try JSON.parse(bytes)
    let c = try ModelConfig(json: .object(o))
    if let q = c.quantization { _ = try QuantScheme.parse(q, source: "config.json") }
  }
}

@Sendable func fuzzGenerationConfig(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    _ = try Model.generationEOS(Array(bytes), path: "generation_config.json")
  }
}
