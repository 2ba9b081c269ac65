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
// A value replaces the bytes at its position: no arithmetic, so applying is exact. Later slime
// senders also write "checksum" = hash(__positions__) ^ (hash(__values__) << 1), hash being
// torch.hash_tensor (elements widened to float64 / int64, bit patterns xor-reduced); when present
// it is verified, so a corrupted file is refused rather than applied.

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
    /// Owns `values` when they were converted from the bucket's dtype.
    let converted: ByteBuffer?
    public let file: String
  }

  public let folder: String
  public let encoding: String
  public let prevVersion: String?
  public let currentVersion: String?
  public let params: [Param]
  /// Keeps the mapped, copied or decompressed file bytes alive.
  private let keep: [AnyObject]

  /// Largest file a deltas_zstd frame may expand to.
  static let maxFileBytes = 1 << 40

  /// Read the delta folder: every flush file, in name order, after checking for DONE.
  public convenience init(folder: String) throws(GLM5Error) {
    guard fileKind(folder) == .directory else { throw .io("\(folder): no such delta folder") }
    let names = try listDirectory(folder)
    guard names.contains("DONE") else {
      throw .badFormat("\(folder) has no DONE marker: the delta is incomplete (the sender writes DONE after every flush file)")
    }
    let files = names.filter { $0.hasSuffix(".safetensors") }
    guard !files.isEmpty else { throw .badFormat("\(folder) holds no .safetensors flush file") }
    var r = FlushReader()
    for f in files {
      let path = joinPath(folder, f)
      let map = try MappedFile(path: path)
      try r.add(map.bytes, owner: map, path: path)
    }
    self.init(folder: folder, reader: r)
  }

  /// A delta from flush files held in memory (copied), in the given order: what the folder
  /// reader does after listing the folder (tests and Sources/GLM5Fuzz).
  public convenience init(files: [(path: String, bytes: [UInt8])], folder: String = "<memory>") throws(GLM5Error) {
    var r = FlushReader()
    for f in files {
      let copy = try ByteBuffer(count: f.bytes.count, what: f.path)
      f.bytes.withUnsafeBufferPointer { if let p = $0.baseAddress { copy.pointer.update(from: p, count: $0.count) } }
      try r.add(UnsafeRawBufferPointer(start: copy.pointer, count: f.bytes.count), owner: copy, path: f.path)
    }
    self.init(folder: folder, reader: r)
  }

  private init(folder: String, reader r: FlushReader) {
    self.folder = folder
    encoding = r.enc ?? "indices"
    prevVersion = r.prev ?? nil
    currentVersion = r.cur ?? nil
    params = r.params
    keep = r.keep
  }

  /// What the flush files read so far say, and the memory their params point into.
  private struct FlushReader {
    var enc: String? = nil
    var prev: String?? = nil
    var cur: String?? = nil
    var params: [Param] = []
    var keep: [AnyObject] = []

    /// One flush file: a safetensors file or one zstd frame of it; `owner` keeps `raw` alive.
    mutating func add(_ raw: UnsafeRawBufferPointer, owner: AnyObject, path: String) throws(GLM5Error) {
      var bytes = raw
      keep.append(owner)
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
      if e == "deltas_zstd" && !Zstd.isFrame(raw) { throw bad("encoding deltas_zstd, but the file is not zstd-compressed") }
      if prev == nil { prev = meta["prev_version"] } else if prev! != meta["prev_version"] { throw bad("prev_version differs from an earlier file's") }
      if cur == nil { cur = meta["current_version"] } else if cur! != meta["current_version"] { throw bad("current_version differs from an earlier file's") }
      guard let pos = tensors.first(where: { $0.name == "__positions__" }), let val = tensors.first(where: { $0.name == "__values__" }) else {
        throw bad("a delta file holds __positions__ and __values__")
      }
      guard pos.dtype == .u8, pos.shape.count == 1 else { throw bad("__positions__ is \(pos.dtype.name) \(shapeString(pos.shape)), expected U8 [bytes]") }
      guard val.shape.count == 1 else { throw bad("__values__ has shape \(shapeString(val.shape)), expected one dimension") }
      if let want = meta["checksum"] {
        let got = SlimeDelta.checksum(positions: pos, values: val)
        guard want == got else { throw bad("checksum \(got) does not match the file's \(want): the file is corrupt") }
      }
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
  }

  /// slime's checksum of a file's two tensors, as decimal text (it can be 65 bits wide).
  static func checksum(positions: TensorView, values: TensorView) -> String {
    func hash(_ t: TensorView) -> UInt64 {
      guard let d = t.data else { return 0 }
      var h: UInt64 = 0
      for i in 0..<t.count {
        switch t.dtype {
        case .i8: h ^= UInt64(bitPattern: Int64(d.load(fromByteOffset: i, as: Int8.self)))
        case .i16: h ^= UInt64(bitPattern: Int64(d.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .i32: h ^= UInt64(bitPattern: Int64(d.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .i64, .u64, .f64: h ^= d.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
        case .u8, .bool: h ^= UInt64(d.load(fromByteOffset: i, as: UInt8.self))
        case .u16: h ^= UInt64(d.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        case .u32: h ^= UInt64(d.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        case .f8e4m3: h ^= Double(f8e4m3ToFloat(d.load(fromByteOffset: i, as: UInt8.self))).bitPattern
        case .f8e5m2: h ^= Double(f8e5m2ToFloat(d.load(fromByteOffset: i, as: UInt8.self))).bitPattern
        case .f32, .bf16, .f16: h ^= (Scalar.load(d, i, t.dtype) ?? 0).bitPattern
        }
      }
      return h
    }
    let v = UInt128(hash(values)) << 1
    return String(UInt128(hash(positions)) ^ v)
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
    if val.dtype == dtype {
      return Param(name: name, dtype: dtype, shape: shape, positions: positions, values: val.data! + vs * dtype.byteSize,
                   converted: nil, file: path)
    }
    // slime concatenates a bucket's values into one tensor, so a bucket mixing dtypes carries
    // them promoted (bf16 next to f32 arrives as f32); take them back when that is exact.
    let conv = try ByteBuffer(count: n * dtype.byteSize, what: "delta values of \(name)")
    let src = val.data! + vs * val.dtype.byteSize
    for k in 0..<n {
      guard let x = Scalar.load(src, k, val.dtype), Scalar.store(x, into: UnsafeMutableRawPointer(conv.pointer), k, dtype),
            Scalar.load(UnsafeRawPointer(conv.pointer), k, dtype).map({ $0.bitPattern == x.bitPattern || ($0.isNaN && x.isNaN) }) == true else {
        throw badP("is \(dtName), but its values arrive as \(val.dtype.name) and value \(k) does not convert back exactly")
      }
    }
    return Param(name: name, dtype: dtype, shape: shape, positions: positions, values: UnsafeRawPointer(conv.pointer),
                 converted: conv, file: path)
  }
}

/// One element of a tensor as a Double, for exact dtype conversions (nil: a dtype without a
/// numeric value here).
enum Scalar {
  static func load(_ p: UnsafeRawPointer, _ i: Int, _ d: DType) -> Double? {
    switch d {
    case .f32: return Double(p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
    case .bf16: return Double(bf16ToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
    case .f16: return Double(f16ToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
    case .f64: return p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
    case .i32: return Double(p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
    case .i64: return Double(p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
    case .i16: return Double(p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
    case .u8: return Double(p.load(fromByteOffset: i, as: UInt8.self))
    default: return nil
    }
  }

  /// Store x as dtype d; false when it cannot be represented there at all.
  static func store(_ x: Double, into p: UnsafeMutableRawPointer, _ i: Int, _ d: DType) -> Bool {
    func int<T: FixedWidthInteger>(_: T.Type) -> T? { x.isFinite && x == x.rounded() && x >= Double(T.min) && x <= Double(T.max) ? T(x) : nil }
    switch d {
    case .f32: p.storeBytes(of: Float(x), toByteOffset: 4 * i, as: Float.self)
    case .bf16: p.storeBytes(of: floatToBF16(Float(x)), toByteOffset: 2 * i, as: UInt16.self)
    case .f16: p.storeBytes(of: Float16(Float(x)).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
    case .f64: p.storeBytes(of: x, toByteOffset: 8 * i, as: Double.self)
    case .i32: guard let v = int(Int32.self) else { return false }; p.storeBytes(of: v, toByteOffset: 4 * i, as: Int32.self)
    case .i64: guard let v = int(Int64.self) else { return false }; p.storeBytes(of: v, toByteOffset: 8 * i, as: Int64.self)
    case .i16: guard let v = int(Int16.self) else { return false }; p.storeBytes(of: v, toByteOffset: 2 * i, as: Int16.self)
    case .u8: guard let v = int(UInt8.self) else { return false }; p.storeBytes(of: v, toByteOffset: i, as: UInt8.self)
    default: return false
    }
    return true
  }
}
