// glm5 serve --weights-watch DIR: publish-only weight sync (slime's mode for fleets that take no
// update RPCs: the trainer publishes each version as a folder, the servers pick it up).
//
//   DIR/weight_v000001/   a delta in slime's layout (rank*_flush*.safetensors + DONE), or a full
//   DIR/weight_v000002/   Hugging Face checkpoint (config.json + safetensors)
//
// Every `interval` seconds the watcher lists DIR and applies, in version order, each folder whose
// number is above the last one applied, through the scheduler's weight update (the same path as
// POST /update_weights_from_disk: it waits for running requests, holds new ones, and empties
// the prefix cache). The live version becomes the folder's number ("7" for weight_v000007), as
// slime numbers its deltas. A folder counts once it is complete:
//   delta  its DONE marker exists (the sender writes it after every flush file)
//   full   config.json and a DONE marker, or config.json and model.safetensors.index.json with
//          every shard the index names (Hugging Face's save_pretrained writes the index after
//          the shards); a lone model.safetensors needs DONE, as it may still be being written
// The first incomplete folder stops the pass (a delta applies on top of the one before it); a
// folder that fails to apply is logged and passed over, and the next pass goes on after it.

import GLM5Core
import ServiceLifecycle

struct WeightsWatcher: Service {
  let dir: String
  let interval: Double
  let scheduler: Scheduler
  let log: @Sendable (String) -> Void

  /// The version number of a folder name weight_vNNN (nil for other names).
  static func number(_ name: String) -> Int? {
    guard name.hasPrefix("weight_v") else { return nil }
    let digits = name.dropFirst("weight_v".count)
    guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
    return Int(digits)
  }

  enum Kind { case delta, full }

  /// What the folder holds, when it is complete (nil while it is not).
  static func complete(_ path: String) -> Kind? {
    guard let names = try? listDirectory(path) else { return nil }
    let done = names.contains("DONE")
    if names.contains(where: { $0.hasPrefix("rank") && $0.hasSuffix(".safetensors") }) {
      return done ? .delta : nil
    }
    guard names.contains("config.json") else { return nil }
    if done { return .full }
    guard names.contains("model.safetensors.index.json"),
          let bytes = try? readTextFile(path + "/model.safetensors.index.json"),
          let index = try? JSON.parse(String(decoding: bytes, as: UTF8.self)),
          let map = index["weight_map"]?.object else { return nil }
    let shards = Set(map.values.compactMap(\.string))
    return !shards.isEmpty && shards.allSatisfy(names.contains) ? .full : nil
  }

  func run() async throws {
    log("watching \(dir) for weight_vNNNNNN folders")
    var applied = Int(scheduler.model.weightVersion) ?? -1
    while !Task.isCancelled && !Task.isShuttingDownGracefully {
      applied = await pass(after: applied)
      try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
    }
  }

  /// Apply the complete folders above `after`, in order; returns the last number passed.
  func pass(after: Int) async -> Int {
    guard let names = try? listDirectory(dir) else { return after }
    var last = after
    for (n, name) in names.compactMap({ n in WeightsWatcher.number(n).map { ($0, n) } }).sorted(by: { $0.0 < $1.0 }) where n > last {
      let path = dir + "/" + name
      guard let kind = WeightsWatcher.complete(path) else { break }
      let update: WeightUpdateKind = kind == .delta ? .delta(path, version: String(n)) : .folder(path, version: String(n))
      let r = await withCheckedContinuation { (c: CheckedContinuation<UpdateReply, Never>) in
        scheduler.post(.update(update, abortAll: false, reply: { c.resume(returning: $0) }))
      }
      log(r.success ? "weights-watch: applied \(name) (\(kind == .delta ? "delta" : "full checkpoint")), live version \(n)"
                    : "weights-watch: \(name) not applied: \(r.message)")
      last = n
    }
    return last
  }
}
