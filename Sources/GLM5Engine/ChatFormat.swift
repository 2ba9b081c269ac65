// GLM's chat turns, the one chat format the engine knows (no Jinja engine: `glm5 chat`).
//
// A folder "carries a chat template" when it has a `chat_template.jinja` (transformers' file
// since 4.43), or its tokenizer_config.json has a `chat_template` (a string, or Hugging Face's
// list of {name, template} with one named "default"), and that template names `[gMASK]`,
// `<|user|>` and `<|assistant|>`, and its tokenizer has the special tokens `[gMASK]`, `<sop>`,
// `<|user|>` and `<|assistant|>`. The template text is then only recognised, never run: turns
// are GLM's fixed format,
//
//   [gMASK]<sop>[<|system|>\n{system}]<|user|>\n{message}<|assistant|>\n{reply}<|user|>\n{message}…
//
// which is what GLM-4's and GLM-5's templates render for plain text turns (no tools, no
// thinking blocks). Each text part between two special tokens is encoded as one piece, as the
// tokenizer sees a rendered template ("\n{message}" together), with parse_special off: a user's
// `<|user|>` is text. A reply ends at `<|user|>` (GLM's models write it to hand the turn back),
// `<|observation|>`, `<|endoftext|>` or the model's eos ids. `[TAG_GLM_CHAT_TURNS]`

import GLM5Core
import GLM5Tokenizer

public struct ChatFormat: Sendable {
  public let gMask: Int32, sop: Int32, user: Int32, assistant: Int32
  /// `<|system|>`, when the tokenizer has it.
  public let system: Int32?
  /// The ids that end a reply besides the model's eos ids: `<|user|>`, `<|observation|>`,
  /// `<|endoftext|>` (those the tokenizer has).
  public let stopTokenIds: [Int32]

  /// The chat format of `folder` (its chat template) and `tokenizer`, or an error saying why
  /// the folder has none (.unsupported).
  public init(folder: String, tokenizer: Tokenizer) throws(GLM5Error) {
    let (template, source) = try ChatFormat.template(folder: folder)
    guard template.contains("[gMASK]") && template.contains("<|user|>") && template.contains("<|assistant|>") else {
      throw .unsupported("\(source): the chat template is not GLM-style (it does not name [gMASK], <|user|> and <|assistant|>); glm5 chat knows only GLM's turn format")
    }
    func special(_ s: String) throws(GLM5Error) -> Int32 {
      guard let id = tokenizer.id(of: s) else {
        throw .unsupported("\(tokenizer.path) has no \(s) token, which GLM's chat turns need")
      }
      return id
    }
    gMask = try special("[gMASK]")
    sop = try special("<sop>")
    user = try special("<|user|>")
    assistant = try special("<|assistant|>")
    system = tokenizer.id(of: "<|system|>")
    stopTokenIds = ["<|user|>", "<|observation|>", "<|endoftext|>"].compactMap { tokenizer.id(of: $0) }
  }

  /// The folder's chat template text and the file it came from.
  static func template(folder: String) throws(GLM5Error) -> (String, String) {
    let jinja = joinPath(folder, "chat_template.jinja")
    if fileKind(jinja) == .file { return (String(decoding: try readTextFile(jinja), as: UTF8.self), jinja) }
    let cfgPath = joinPath(folder, "tokenizer_config.json")
    guard fileKind(cfgPath) == .file else {
      throw .unsupported("\(folder) has no chat_template.jinja and no tokenizer_config.json: glm5 chat needs a chat template")
    }
    let bytes = try readTextFile(cfgPath)
    let json: JSON
    do { json = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
      throw .badFormat("\(cfgPath): \(error.message)")
    }
    guard let t = json["chat_template"], !t.isNull else {
      throw .unsupported("\(cfgPath) has no chat_template: glm5 chat needs a model folder with a chat template")
    }
    if let s = t.string { return (s, cfgPath) }
    if let list = t.array, let d = list.first(where: { $0["name"]?.string == "default" })?["template"]?.string {
      return (d, cfgPath)
    }
    throw .badFormat("\(cfgPath): chat_template is \(t.kind), expected a string or a list with a {\"name\": \"default\"} template")
  }

  /// The ids of a user turn, up to the reply: `[gMASK]<sop>` and the system part when `first`,
  /// and `<|user|>` unless the session already ends with it (`afterUser`, a reply that handed
  /// the turn back).
  public func turn(_ message: String, system systemText: String? = nil, first: Bool, afterUser: Bool,
                   tokenizer: Tokenizer) throws(GLM5Error) -> [Int32] {
    var ids: [Int32] = []
    if first {
      ids += [gMask, sop]
      if let systemText {
        guard let system else { throw .unsupported("\(tokenizer.path) has no <|system|> token for a system prompt") }
        ids.append(system)
        ids += try tokenizer.encode("\n" + systemText, parseSpecial: false)
      }
    }
    if !afterUser { ids.append(user) }
    ids += try tokenizer.encode("\n" + message, parseSpecial: false)
    ids.append(assistant)
    ids += try tokenizer.encode("\n", parseSpecial: false)
    return ids
  }
}
