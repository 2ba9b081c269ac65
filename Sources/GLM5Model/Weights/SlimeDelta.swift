// A delta against the loaded weights in the layout of slime's delta weight sync (THUDM/slime,
// docs/en/advanced/delta-weight-sync.md; the sender's encoders in
// slime/backends/megatron_utils/update_weight/update_weight_from_distributed_delta.py):
//
//   <dir>/rank0000_flush000000.safetensors ...   one file per flush, read in name order
//   <dir>/DONE                                   written last: the directory is complete
//
// Each file is a safetensors file (or, for encoding "deltas_zstd", one zstd frame of it) with
//   __positions__  U8 [bytes]    the packed positions of every param of the file
//   __values__     [n] in the params' dtype: the new values, verbatim
// and __metadata__ {"encoding": "indices" | "deltas" | "deltas_zstd", "params": JSON list of
// {name, dtype, shape, pos_start, pos_end, pos_width, val_start, val_end}, "prev_version",
// "current_version"}. pos_* are byte offsets into __positions__, val_* element offsets into
// __values__. Positions are flat element indices of the param, ascending:
//   indices  int32 absolute positions (pos_width 4)
//   deltas   gaps d_k = p_k − p_{k−1} − 1 with p_{−1} = −1, uint16 or uint32 (pos_width 2 or 4):
//            p_k = Σ_{j≤k} (d_j + 1) − 1
// A value replaces the bytes at its position: no arithmetic, so applying is exact.

import GLM5Core

public final class SlimeDelta: @unchecked Sendable {
  public struct Param {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Decoded flat positions, ascending, each < the element count.
    public let positions: HeapBuffer<Int>
    /// The new values, positions.count elements of dtype.
    public let values: UnsafeRawPointer
    public let file: String
  }

  public let folder: String
  public let encoding: String
  public let prevVersion: String?
  public let currentVersion: String?
  public private(set) var params: [Param] = []
  /// Keeps the mapped or decompressed file bytes alive.
  private var keep: [AnyObject] = []

  /// Largest file a deltas_zstd frame may expand to.
  static let maxFileBytes = 1 << 40

  public init(folder: String) throws(GLM5Error) {
    self.folder = folder
    guard fileKind(folder) == .directory else { throw .io("\(folder): no such delta folder") }
    let names = try listDirectory(folder)
    guard names.contains("DONE") else {
      throw .badFormat("\(folder) has no DONE marker: the delta is incomplete (the sender writes DONE after every flush file)")
    }
    let files = names.filter { $0.hasSuffix(".safetensors") }
    guard !files.isEmpty else { throw .badFormat("\(folder) holds no .safetensors flush file") }
    var enc: String? = nil, prev: String?? = nil, cur: String?? = nil
    for f in files {
      let path = joinPath(folder, f)
      let map = try MappedFile(path: path)
      var bytes = map.bytes
      keep.append(map)
      if Zstd.isFrame(bytes) {
        let b = try Zstd.decompress(bytes, limit: SlimeDelta.maxFileBytes, what: path)
        keep.append(b)
        bytes = UnsafeRawBufferPointer(b.bytes)
      }
      let (tensors, meta) = try SafeTensorsFile.parse(bytes, path: path)
      func bad(_ m: String) -> GLM5Error { .badFormat("\(path): \(m)") }
      guard let e = meta["encoding"] else { throw bad("no \"encoding\" in the metadata: not a slime delta file") }
      guard ["indices", "deltas", "deltas_zstd"].contains(e) else { throw .unsupported("\(path): encoding \"\(e)\" is not supported (indices, deltas, deltas_zstd)") }
      if let enc, enc != e { throw bad("encoding \"\(e)\", but an earlier file of the delta uses \"\(enc)\"") }
      enc = e
      if e == "deltas_zstd" && !Zstd.isFrame(map.bytes) { throw bad("encoding deltas_zstd, but the file is not zstd-compressed") }
      if prev == nil { prev = meta["prev_version"] } else if prev! != meta["prev_version"] { throw bad("prev_version differs from an earlier file's") }
      if cur == nil { cur = meta["current_version"] } else if cur! != meta["current_version"] { throw bad("current_version differs from an earlier file's") }
      guard let pos = tensors.first(where: { $0.name == "__positions__" }), let val = tensors.first(where: { $0.name == "__values__" }) else {
        throw bad("a delta file holds __positions__ and __values__")
      }
      guard pos.dtype == .u8, pos.shape.count == 1 else { throw bad("__positions__ is \(pos.dtype.name) \(shapeString(pos.shape)), expected U8 [bytes]") }
      guard val.shape.count == 1 else { throw bad("__values__ has shape \(shapeString(val.shape)), expected one dimension") }
      guard let list = meta["params"] else { throw bad("no \"params\" in the metadata") }
      let json: JSON
      do { json = try withBytes(Array(list.utf8)) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
        throw bad("\"params\" is not JSON: \(error.message)")
      }
      guard let entries = json.array else { throw bad("\"params\" is not a list") }
      for (i, p) in entries.enumerated() {
        params.append(try SlimeDelta.param(p, index: i, encoding: e, positions: pos, values: val, path: path))
      }
    }
    encoding = enc ?? "indices"
    prevVersion = prev ?? nil
    currentVersion = cur ?? nil
  }

  /// One manifest entry, checked against the blobs, with its positions decoded.
  static func param(_ p: JSON, index i: Int, encoding: String, positions pos: TensorView, values val: TensorView,
                    path: String) throws(GLM5Error) -> Param {
    func bad(_ m: String) -> GLM5Error { .badFormat("\(path): params[\(i)]: \(m)") }
    guard let name = p["name"]?.string else { throw bad("no \"name\"") }
    func badP(_ m: String) -> GLM5Error { .badFormat("\(path): param \(name): \(m)") }
    guard let dtName = p["dtype"]?.string else { throw badP("no \"dtype\"") }
    guard let dtype = DType(torchName: dtName) else { throw .unsupported("\(path): param \(name): dtype \"\(dtName)\" is not supported") }
    guard let shapeJ = p["shape"]?.array else { throw badP("no \"shape\"") }
    var shape: [Int] = []
    var count = 1
    for d in shapeJ {
      guard let v = d.int, v >= 0 else { throw badP("shape entry \(d.serialized) is not a non-negative integer") }
      shape.append(v)
      let (m, o) = count.multipliedReportingOverflow(by: v)
      guard !o else { throw badP("shape overflows") }
      count = m
    }
    guard let ps = p["pos_start"]?.int, let pe = p["pos_end"]?.int, let pw = p["pos_width"]?.int,
          let vs = p["val_start"]?.int, let ve = p["val_end"]?.int else {
      throw badP("pos_start, pos_end, pos_width, val_start and val_end must be integers")
    }
    guard 0 <= ps, ps <= pe, pe <= pos.byteCount else { throw badP("positions [\(ps), \(pe)) outside the \(pos.byteCount)-byte __positions__") }
    guard 0 <= vs, vs <= ve, ve <= val.count else { throw badP("values [\(vs), \(ve)) outside the \(val.count) of __values__") }
    guard val.dtype.byteSize == dtype.byteSize else {
      throw badP("is \(dtName) but __values__ is \(val.dtype.name): the values must be in the param's own dtype")
    }
    let n = ve - vs
    let widthOK = encoding == "indices" ? pw == 4 : (pw == 2 || pw == 4)
    guard widthOK else { throw badP("pos_width \(pw) is not valid for encoding \(encoding)") }
    guard pe - ps == n * pw else { throw badP("\(pe - ps) position bytes for \(n) values of width \(pw)") }
    let positions = try HeapBuffer<Int>(count: n, what: "delta positions of \(name)")
    let raw = pos.data! + ps
    var prev = -1
    for k in 0..<n {
      let v: Int
      if pw == 2 { v = Int(raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)) } else {
        v = encoding == "indices" ? Int(raw.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)) : Int(raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))
      }
      let at = encoding == "indices" ? v : prev + v + 1
      guard at > prev else { throw badP("position \(at) at entry \(k) is not after \(prev): positions must ascend") }
      guard at < count else { throw badP("position \(at) at entry \(k) is outside the \(count) elements of \(shapeString(shape))") }
      positions[k] = at
      prev = at
    }
    return Param(name: name, dtype: dtype, shape: shape, positions: positions, values: val.data! + vs * dtype.byteSize, file: path)
  }
}
