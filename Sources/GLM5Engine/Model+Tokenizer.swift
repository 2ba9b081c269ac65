// A model's tokenizer: the tokenizer.json of its folder, loaded at the first call that asks for it
// (token-in-token-out hosts never pay for it) and kept; a folder without one has none.

import GLM5Core
import GLM5Tokenizer

extension Model {
  /// The folder's tokenizer, nil when the folder has no tokenizer.json. A malformed or
  /// unsupported file is an error, every time it is asked for.
  public func tokenizer() throws(GLM5Error) -> Tokenizer? {
    let folder = checkpoint.path
    let r: Result<Tokenizer?, GLM5Error> = tokenizerState.withLock { state in
      if let s = state { return s }
      let loaded = Result { () throws(GLM5Error) -> Tokenizer? in try Tokenizer.loadIfPresent(folder: folder) }
      state = loaded
      return loaded
    }
    return try r.get()
  }
}
