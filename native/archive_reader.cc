#include "archive_reader.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "archive_decode.h"
#include "async.h"
#include "extract_dir.h"
#include "hashing.h"
#include "tar_reader.h"

namespace guts {

namespace {

constexpr uint64_t kMaxMetaFile = 64ull << 20;   // GUTS-INDEX, MANIFEST.json
constexpr uint64_t kMaxMemoryFile = 1ull << 20;  // keys/node.key, config/config.yaml
constexpr uint64_t kMaxFileSize = 1ull << 47;    // larger sizes are not plausible: a crafted index
constexpr size_t kMaxProblems = 1000;
// Entry rules shared by verify and restore (docs/FORMAT.md "Reader rules"):
// whatever passes here, ExtractDir can create on a file system with room.
constexpr size_t kMaxPath = 4096;       // PATH_MAX
constexpr size_t kMaxComponent = 255;   // NAME_MAX of ext4, xfs, btrfs, tmpfs
constexpr size_t kMaxComponents = 32;   // the layout needs 2; no tool writes deeper trees

// Why a path may not be written under the target ("" = safe).
std::string UnsafeReason(const std::string& p) {
  if (p.empty()) return "empty path";
  if (p.size() > kMaxPath) return "path longer than 4096 bytes";
  if (p[0] == '/') return "absolute path";
  for (unsigned char c : p)
    if (c < 0x20 || c == 0x7f) return "control character in path";
  size_t start = 0, components = 0;
  for (;;) {
    size_t slash = p.find('/', start);
    std::string comp = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (comp.empty()) return "empty path component";
    if (comp == ".") return "'.' path component";
    if (comp == "..") return "'..' path component (escapes the target)";
    if (comp.size() > kMaxComponent) return "path component longer than 255 bytes (no file system can create it)";
    if (++components > kMaxComponents) return "more than 32 path components";
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return "";
}

// Every proper parent of p ("a/b/c" -> "a", "a/b").
template <typename F>
void ForEachParent(const std::string& p, F f) {
  for (size_t slash = p.find('/'); slash != std::string::npos; slash = p.find('/', slash + 1)) f(p.substr(0, slash));
}

// '#' in a layout pattern matches one or more ASCII digits; other bytes match themselves.
bool MatchPattern(const std::string& pat, const std::string& p) {
  size_t i = 0, j = 0;
  while (i < pat.size()) {
    if (pat[i] == '#') {
      size_t k = j;
      while (k < p.size() && p[k] >= '0' && p[k] <= '9') k++;
      if (k == j) return false;
      j = k;
    } else {
      if (j >= p.size() || p[j] != pat[i]) return false;
      j++;
    }
    i++;
  }
  return j == p.size();
}

const char* ForbiddenType(char t) {
  switch (t) {
    case '1': return "hard link";
    case '2': return "symbolic link";
    case '3': return "character device";
    case '4': return "block device";
    case '6': return "fifo";
    case '7': return "contiguous file";
    default: return nullptr;
  }
}

std::string Octal(uint32_t m) {
  char b[16];
  snprintf(b, sizeof b, "0%o", m);
  return b;
}

// Enforces the reader rules of docs/FORMAT.md on the entries TarParser finds.
class ArchiveValidator : public TarHandler {
 public:
  ArchiveValidator(const ReadArchiveOptions& o, ExtractDir* out, TaskState& st, ReadArchiveResult& r)
      : o_(o), out_(out), state_(st), r_(r), tar_(this), memory_(o.in_memory.begin(), o.in_memory.end()) {}

  TarParser& tar() { return tar_; }

  void Problem(const std::string& path, Code code, const std::string& msg) override {
    if (o_.fail_fast && code == Code::NotArchive)
      throw GutsError(code, EscapeName(o_.path) + " is not a guts-node backup archive: " + msg, o_.path);
    if (o_.fail_fast) throw GutsError(code, EscapeName(path.empty() ? "archive " + o_.path : path) + ": " + msg, path);
    if (code == Code::NotArchive) tar_.Stop();  // nothing else to say about it
    if (r_.problems.size() >= kMaxProblems) {
      if (!too_many_) {
        too_many_ = true;
        r_.problems.push_back({"", Code::Corrupt, "too many problems, stopped checking"});
        tar_.Stop();
      }
      return;
    }
    r_.problems.push_back({path, code, msg});
  }

  bool Begin(const TarEntry& e) override {
    entries_seen_++;
    const bool is_dir = e.type == '5';
    const bool is_file = e.type == '0' || e.type == '\0';
    std::string path = e.path;
    if (is_dir)
      while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (manifest_begun_) Problem(path, Code::Corrupt, "entry after MANIFEST.json (MANIFEST.json must be the last entry)");
    // Checked first: a tar that does not start with the index (e.g. `tar -C dir .`)
    // is not a guts backup, and one line says so better than a flood.
    // An undamaged tar that starts with anything else is not a backup at all.
    if (entries_seen_ == 1 && !(is_file && path == "GUTS-INDEX")) {
      if (tar_.damaged())
        Problem("GUTS-INDEX", Code::Corrupt, "lost in a damaged part of the archive; the rest cannot be checked");
      else
        Problem("", Code::NotArchive,
                "a tar archive whose first entry is " + EscapeName(path) + ", not GUTS-INDEX");
      tar_.Stop();
      return false;
    }

    std::string why = UnsafeReason(path);
    if (!why.empty()) {
      Problem(path.empty() ? "(empty name)" : path, Code::UnsafePath, why);
      return false;
    }
    if (const char* kind = ForbiddenType(e.type)) {
      std::string msg = std::string(kind) + " entry";
      if ((e.type == '1' || e.type == '2') && !e.linkname.empty()) msg += " to " + EscapeName(e.linkname);
      Problem(path, Code::UnsafePath, msg + " (only regular files and directories are allowed)");
      return false;
    }
    if (!is_dir && !is_file) {
      Problem(path, Code::UnsafePath, "unsupported tar entry type '" + EscapeName(std::string(1, e.type)) + "'");
      return false;
    }
    if (e.sparse) {
      Problem(path, Code::UnsafePath, "sparse file entry (not allowed)");
      return false;
    }
    if (is_dir) {
      if (index_pos_.count(path)) {
        Problem(path, Code::Corrupt, "entry is both a directory and a file");
        return false;
      }
      if (!dirs_.insert(path).second) {
        Problem(path, Code::Corrupt, "duplicate entry");
        return false;
      }
      if (!TreeRulesAllowDir(path)) return false;
      if (!InLayout(path, true)) {
        Problem(path, Code::Corrupt, "directory is not part of a guts-node backup (see docs/FORMAT.md, Reader rules)");
        return false;
      }
      ReadEntryInfo d;
      d.path = path;
      d.dir = true;
      d.mode = e.mode & 07777;
      d.mtime = e.mtime;
      r_.entries.push_back(std::move(d));
      if (out_) out_->MakeDir(path);
      return false;
    }
    if (path == "GUTS-INDEX") {
      if (entries_seen_ != 1) {
        Problem(path, Code::Corrupt, "duplicate GUTS-INDEX entry");
        return false;
      }
      if (e.size > kMaxMetaFile) {
        Problem(path, Code::Corrupt, "GUTS-INDEX is " + std::to_string(e.size) + " bytes (limit 64 MiB)");
        tar_.Stop();
        return false;
      }
      Start(kIndex, path, e);
      return true;
    }
    if (path == "MANIFEST.json") {
      if (manifest_begun_) {
        Problem(path, Code::Corrupt, "duplicate MANIFEST.json entry");
        return false;
      }
      manifest_begun_ = true;
      if (e.size > kMaxMetaFile) {
        Problem(path, Code::Corrupt, "MANIFEST.json is " + std::to_string(e.size) + " bytes (limit 64 MiB)");
        return false;
      }
      Start(kManifest, path, e);
      return true;
    }
    if (!has_index_) return false;  // index rejected: already reported and stopped
    auto it = index_pos_.find(path);
    if (it != index_pos_.end() && index_[it->second].seen) {
      Problem(path, Code::Corrupt, "duplicate entry");
      return false;
    }
    if (it != index_pos_.end()) index_[it->second].seen = true;
    if (!InLayout(path, false)) {
      Problem(path, Code::Corrupt, "file is not part of a guts-node backup (see docs/FORMAT.md, Reader rules)");
      return false;
    }
    if (it == index_pos_.end()) {
      Problem(path, Code::Corrupt, "file not listed in GUTS-INDEX");
      return false;
    }
    IndexEntry& ie = index_[it->second];
    if (dirs_.count(path)) {
      Problem(path, Code::Corrupt, "entry is both a directory and a file");
      return false;
    }
    if (e.size != ie.size) {
      Problem(path, Code::Corrupt,
              "tar header declares " + std::to_string(e.size) + " bytes but GUTS-INDEX lists " +
                  std::to_string(ie.size) + (e.size > ie.size ? " (refusing data beyond the index)" : ""));
      return false;
    }
    if ((e.mode & 07777) != ie.mode)
      Problem(path, Code::Corrupt,
              "mode " + Octal(e.mode & 07777) + " in the tar header differs from " + Octal(ie.mode) + " in GUTS-INDEX");
    Start(memory_.count(path) ? kMemory : kFile, path, e);
    cur_mode_ = ie.mode;
    if (kind_ == kMemory && e.size > kMaxMemoryFile) {
      kind_ = kNone;
      Problem(path, Code::Corrupt, "file is " + std::to_string(e.size) + " bytes (limit 1 MiB)");
      return false;
    }
    if (kind_ == kFile && out_) out_->BeginFile(path, e.size);
    return true;
  }

  void Data(const uint8_t* p, size_t n) override {
    if (kind_ == kFile || kind_ == kMemory) xxh_.Update(p, n);
    if (kind_ == kFile) {
      if (out_) out_->Write(p, n);
    } else {
      collect_.append(reinterpret_cast<const char*>(p), n);
    }
  }

  void End() override {
    Kind k = kind_;
    kind_ = kNone;
    switch (k) {
      case kIndex:
        r_.index = std::move(collect_);
        r_.has_index = true;
        ParseIndex();
        break;
      case kManifest:
        r_.manifest = std::move(collect_);
        r_.has_manifest = true;
        break;
      case kFile:
      case kMemory: {
        if (k == kFile && out_) out_->EndFile(cur_mode_, cur_.mtime);
        if (k == kMemory) r_.memory[cur_.path] = std::move(collect_);
        ReadEntryInfo f;
        f.path = cur_.path;
        f.size = cur_.size;
        f.mode = cur_mode_;
        f.mtime = cur_.mtime;
        f.xxh3 = xxh_.HexDigest();
        r_.entries.push_back(std::move(f));
        state_.files.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case kNone: break;
    }
    collect_.clear();
  }

  void Abort() override {
    Kind k = kind_;
    kind_ = kNone;
    collect_.clear();
    if (k == kIndex) tar_.Stop();  // cannot check anything without the index
    if (k == kFile || k == kMemory) {
      if (k == kFile && out_) out_->AbortFile();
      ReadEntryInfo f;
      f.path = cur_.path;
      f.size = cur_.size;
      f.mode = cur_mode_;
      f.mtime = cur_.mtime;
      f.damaged = true;
      r_.entries.push_back(std::move(f));
    }
  }

  void Finish() {
    if (entries_seen_ == 0 && r_.problems.empty()) {
      Problem("", Code::NotArchive, "a tar archive without entries");
      return;
    }
    if (!has_index_) return;
    const bool damaged = tar_.damaged();
    for (auto& ie : index_)
      if (!ie.seen)
        Problem(ie.path, Code::Corrupt,
                damaged ? "not found: the archive is damaged or truncated before this file"
                        : "listed in GUTS-INDEX but missing from the archive");
    if (!manifest_begun_)
      Problem("MANIFEST.json", Code::Corrupt,
              damaged ? "not found: the archive is damaged or truncated" : "missing (must be the last entry)");
  }

 private:
  enum Kind { kNone, kIndex, kManifest, kFile, kMemory };

  bool InLayout(const std::string& path, bool is_dir) const {
    if (o_.layout.empty()) return true;
    for (const std::string& pat : o_.layout) {
      if (!is_dir && MatchPattern(pat, path)) return true;
      if (is_dir && pat.size() > path.size() && pat.compare(0, path.size(), path) == 0 && pat[path.size()] == '/')
        return true;
    }
    return false;
  }

  // A directory count ExtractDir accepts (every parent counts).
  bool CountDir(const std::string& dir, const std::string& entry) {
    if (!all_dirs_.insert(dir).second || all_dirs_.size() <= kMaxExtractDirs) return true;
    Problem(entry, Code::Corrupt, "too many directories (limit " + std::to_string(kMaxExtractDirs) + ")");
    tar_.Stop();
    return false;
  }

  // A directory entry beneath a file (file "a", then "a/b/"), or past the
  // directory limit, is what extraction would fail on: refused in both modes.
  bool TreeRulesAllowDir(const std::string& path) {
    bool ok = true;
    ForEachParent(path, [&](const std::string& parent) {
      if (ok && index_pos_.count(parent)) {
        Problem(path, Code::Corrupt, "entry beneath " + EscapeName(parent) + ", which is a file");
        ok = false;
      }
    });
    if (!ok) return false;
    ForEachParent(path, [&](const std::string& parent) { ok = ok && CountDir(parent, path); });
    return ok && CountDir(path, path);
  }
  struct IndexEntry {
    std::string path;
    uint64_t size;
    uint32_t mode;
    bool seen;
  };

  void Start(Kind k, const std::string& path, const TarEntry& e) {
    kind_ = k;
    cur_ = e;
    cur_.path = path;
    cur_mode_ = e.mode & 07777;
    collect_.clear();
    if (k != kFile) collect_.reserve(static_cast<size_t>(std::min<uint64_t>(e.size, kMaxMetaFile)));
    xxh_.Reset();
  }

  // "guts-index 1\n" then "<size> <octal mode> <path>\n" per regular file.
  void ParseIndex() {
    const std::string& t = r_.index;
    auto fail = [&](const std::string& path, Code code, const std::string& msg) {
      Problem(path, code, msg);
      tar_.Stop();
    };
    size_t nl = t.find('\n');
    if (nl == std::string::npos || t.compare(0, nl, "guts-index 1") != 0)
      return fail("GUTS-INDEX", Code::Corrupt, "first line is not \"guts-index 1\"");
    size_t pos = nl + 1;
    uint64_t total = 0, stream = 0;
    for (size_t lineno = 2; pos < t.size(); lineno++) {
      nl = t.find('\n', pos);
      if (nl == std::string::npos) nl = t.size();
      const std::string line = t.substr(pos, nl - pos);
      pos = nl + 1;
      const std::string where = "GUTS-INDEX line " + std::to_string(lineno);
      size_t sp1 = line.find(' ');
      size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string::npos || sp1 == 0 || sp1 > 19 || sp2 == sp1 + 1 || sp2 - sp1 > 7)
        return fail("GUTS-INDEX", Code::Corrupt, where + ": expected \"<size> <octal mode> <path>\"");
      uint64_t size = 0;
      uint32_t mode = 0;
      for (size_t i = 0; i < sp1; i++) {
        if (line[i] < '0' || line[i] > '9') return fail("GUTS-INDEX", Code::Corrupt, where + ": invalid size");
        size = size * 10 + static_cast<uint64_t>(line[i] - '0');
      }
      for (size_t i = sp1 + 1; i < sp2; i++) {
        if (line[i] < '0' || line[i] > '7') return fail("GUTS-INDEX", Code::Corrupt, where + ": invalid mode");
        mode = mode * 8 + static_cast<uint32_t>(line[i] - '0');
      }
      std::string path = line.substr(sp2 + 1);
      std::string why = UnsafeReason(path);
      if (!why.empty()) return fail(path, Code::UnsafePath, "GUTS-INDEX lists an unsafe path: " + why);
      if ((mode & ~07777u) == 0100000) mode &= 07777;  // a full st_mode of a regular file
      if (mode > 07777) return fail(path, Code::Corrupt, where + ": invalid mode " + Octal(mode));
      if (size > kMaxFileSize)
        return fail(path, Code::Corrupt, "GUTS-INDEX declares an implausible size of " + std::to_string(size) + " bytes");
      if (path == "GUTS-INDEX" || path == "MANIFEST.json")
        return fail(path, Code::Corrupt, "GUTS-INDEX must not list " + path);
      if (!index_pos_.emplace(path, index_.size()).second)
        return fail(path, Code::Corrupt, "listed twice in GUTS-INDEX");
      index_.push_back({path, size, mode, false});
      total += size;
      stream += (size + 511) / 512 * 512;
    }
    // Files beneath a listed file ("a" and "a/b") cannot both be extracted.
    for (const IndexEntry& ie : index_) {
      bool ok = true;
      ForEachParent(ie.path, [&](const std::string& parent) {
        if (ok && index_pos_.count(parent)) {
          fail(ie.path, Code::Corrupt, "GUTS-INDEX lists a file beneath " + EscapeName(parent) + ", which is a file too");
          ok = false;
        }
        ok = ok && CountDir(parent, ie.path);
      });
      if (!ok) return;
    }
    has_index_ = true;
    // Decompression bomb limit: file data as declared, plus headers, the two
    // metadata files and slack for directories and the end-of-archive padding.
    tar_.SetCap(stream + 2 * kMaxMetaFile + 8192 * (index_.size() + 64) + (16ull << 20));
    if (out_) out_->CheckSpace(total);
  }

  const ReadArchiveOptions& o_;
  ExtractDir* out_;
  TaskState& state_;
  ReadArchiveResult& r_;
  TarParser tar_;
  std::unordered_set<std::string> memory_;

  std::vector<IndexEntry> index_;
  std::unordered_map<std::string, size_t> index_pos_;
  std::unordered_set<std::string> dirs_;      // directory entries seen
  std::unordered_set<std::string> all_dirs_;  // every directory extraction creates
  bool has_index_ = false, manifest_begun_ = false, too_many_ = false;
  uint64_t entries_seen_ = 0;

  Kind kind_ = kNone;
  TarEntry cur_;
  uint32_t cur_mode_ = 0;
  std::string collect_;
  Xxh3Stream xxh_;
};

}  // namespace

ReadArchiveResult ReadArchive(const ReadArchiveOptions& o, TaskState& state) {
  ReadArchiveResult r;
  std::unique_ptr<FileSource> src_owner(o.input_fd >= 0 ? new FileSource(o.input_fd, o.path, o.input_size, o.sha256, &state)
                                                        : new FileSource(o.path, o.sha256, &state));
  FileSource& src = *src_owner;
  state.total = src.size();
  std::unique_ptr<ExtractDir> out;
  if (!o.extract_to.empty()) out.reset(new ExtractDir(o.extract_to, o.fsync));
  ArchiveValidator v(o, out.get(), state, r);
  InputBuffer in(src);
  ArchiveKind kind = DetectKind(in);
  DecodeStats stats;
  Decode(kind, in, v.tar(), o.threads, state, stats, o.frame_checksums || !o.sha256);
  v.tar().Finish();
  v.Finish();
  if (out) out->Finish();
  src.DrainForDigest();
  r.sha256 = src.Sha256Hex();
  r.format = ArchiveKindName(kind);
  r.archive_bytes = src.stream() ? src.consumed() : src.size();
  r.tar_bytes = stats.tar_bytes;
  r.frames = stats.frames;
  r.parallel_frames = stats.parallel_frames;
  r.streamed_frames = stats.streamed_frames;
  return r;
}

namespace {

class ReadArchiveWorker : public PromiseWorker {
 public:
  ReadArchiveWorker(Napi::Env env, ReadArchiveOptions o, std::shared_ptr<TaskState> state)
      : PromiseWorker(env), o_(std::move(o)), state_(std::move(state)) {}

 protected:
  void Run() override { r_ = ReadArchive(o_, *state_); }

  Napi::Value Result(Napi::Env env) override {
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    Napi::Object o = Napi::Object::New(env);
    o.Set("format", r_.format);
    o.Set("archiveBytes", num(r_.archive_bytes));
    o.Set("tarBytes", num(r_.tar_bytes));
    o.Set("frames", num(r_.frames));
    o.Set("parallelFrames", num(r_.parallel_frames));
    o.Set("streamedFrames", num(r_.streamed_frames));
    if (o_.sha256) o.Set("sha256", r_.sha256);
    o.Set("index", r_.has_index ? Napi::String::New(env, r_.index) : env.Null());
    o.Set("manifest", r_.has_manifest ? Napi::String::New(env, r_.manifest) : env.Null());
    Napi::Array entries = Napi::Array::New(env, r_.entries.size());
    for (size_t i = 0; i < r_.entries.size(); i++) {
      const ReadEntryInfo& e = r_.entries[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("path", e.path);
      x.Set("type", e.dir ? "dir" : "file");
      x.Set("size", num(e.size));
      x.Set("mode", Napi::Number::New(env, e.mode));
      x.Set("mtime", Napi::Number::New(env, static_cast<double>(e.mtime)));
      x.Set("xxh3", e.xxh3);
      if (e.damaged) x.Set("damaged", true);
      entries[i] = x;
    }
    o.Set("entries", entries);
    Napi::Array problems = Napi::Array::New(env, r_.problems.size());
    for (size_t i = 0; i < r_.problems.size(); i++) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("path", r_.problems[i].path);
      x.Set("code", CodeName(r_.problems[i].code));
      x.Set("message", r_.problems[i].message);
      problems[i] = x;
    }
    o.Set("problems", problems);
    Napi::Object mem = Napi::Object::New(env);
    for (auto& kv : r_.memory)
      mem.Set(kv.first, Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(kv.second.data()),
                                                   kv.second.size()));
    o.Set("memory", mem);
    return o;
  }

 private:
  ReadArchiveOptions o_;
  std::shared_ptr<TaskState> state_;
  ReadArchiveResult r_;
};

}  // namespace

void InitArchiveReader(Napi::Env env, Napi::Object exports) {
  exports.Set("readArchive", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    if (!info[0].IsObject()) ThrowJs(e, Code::InvalidArgument, "readArchive(options)");
    Napi::Object a = info[0].As<Napi::Object>();
    ReadArchiveOptions o;
    if (!a.Get("path").IsString()) ThrowJs(e, Code::InvalidArgument, "readArchive: path must be a string");
    o.path = a.Get("path").As<Napi::String>();
    if (a.Get("inputFd").IsNumber()) {
      o.input_fd = a.Get("inputFd").As<Napi::Number>().Int32Value();
      if (a.Get("inputSize").IsNumber()) o.input_size = static_cast<uint64_t>(a.Get("inputSize").As<Napi::Number>().DoubleValue());
    }
    unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    o.threads = static_cast<int>(hw);
    if (a.Get("threads").IsNumber()) o.threads = a.Get("threads").As<Napi::Number>().Int32Value();
    if (o.threads < 1) o.threads = 1;
    if (o.threads > 64) o.threads = 64;
    if (a.Get("extractTo").IsString()) o.extract_to = a.Get("extractTo").As<Napi::String>();
    o.fsync = a.Get("fsync").ToBoolean();
    o.sha256 = a.Get("sha256").ToBoolean();
    o.frame_checksums = !a.Get("skipFrameChecksums").ToBoolean();
    o.fail_fast = a.Get("failFast").ToBoolean();
    if (a.Get("layout").IsArray()) {
      Napi::Array m = a.Get("layout").As<Napi::Array>();
      for (uint32_t i = 0; i < m.Length(); i++)
        if (m.Get(i).IsString()) o.layout.push_back(m.Get(i).As<Napi::String>());
    }
    if (a.Get("inMemory").IsArray()) {
      Napi::Array m = a.Get("inMemory").As<Napi::Array>();
      for (uint32_t i = 0; i < m.Length(); i++)
        if (m.Get(i).IsString()) o.in_memory.push_back(m.Get(i).As<Napi::String>());
    }
    auto state = std::make_shared<TaskState>();
    auto* w = new ReadArchiveWorker(e, std::move(o), state);
    return MakeTaskHandle(e, w->Start(), state);
  }));
}

}  // namespace guts
