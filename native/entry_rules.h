// The entry rules of a guts backup (docs/FORMAT.md "Reader rules"), in one
// place: the archive reader applies them to every entry in both modes, verify
// and extract, so that an archive `backup verify` calls VALID is one
// ExtractDir can create on a target with room. Rules on single names are
// here; rules on the tree (no file beneath a file, at most kMaxExtractDirs
// directories) need every entry and are kept by ArchiveValidator. Header-only:
// used by archive_reader.cc (and through it the fuzz target).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace guts {

constexpr size_t kMaxPath = 4096;       // PATH_MAX
constexpr size_t kMaxComponent = 255;   // NAME_MAX of ext4, xfs, btrfs, tmpfs
constexpr size_t kMaxComponents = 32;   // the layout needs 2; no tool writes deeper trees

// Why a path may not be written under the target ("" = safe).
inline std::string UnsafeReason(const std::string& p) {
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
inline void ForEachParent(const std::string& p, F f) {
  for (size_t slash = p.find('/'); slash != std::string::npos; slash = p.find('/', slash + 1)) f(p.substr(0, slash));
}

// '#' in a layout pattern matches one or more ASCII digits; other bytes match themselves.
inline bool MatchPattern(const std::string& pat, const std::string& p) {
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

inline const char* ForbiddenType(char t) {
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

// A file matches one of the layout's patterns; a directory is the parent of one.
inline bool MatchesLayout(const std::vector<std::string>& layout, const std::string& path, bool is_dir) {
  for (const std::string& pat : layout) {
    if (!is_dir && MatchPattern(pat, path)) return true;
    if (is_dir && pat.size() > path.size() && pat.compare(0, path.size(), path) == 0 && pat[path.size()] == '/') return true;
  }
  return false;
}

}  // namespace guts
