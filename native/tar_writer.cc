#include "tar_writer.h"

#include <cstring>

#include "errors.h"

namespace guts {

namespace {

struct UstarBlock {
  char name[100];
  char mode[8];
  char uid[8];
  char gid[8];
  char size[12];
  char mtime[12];
  char chksum[8];
  char typeflag;
  char linkname[100];
  char magic[6];
  char version[2];
  char uname[32];
  char gname[32];
  char devmajor[8];
  char devminor[8];
  char prefix[155];
  char pad[12];
};
static_assert(sizeof(UstarBlock) == kTarBlock, "ustar header is one block");

// Largest value an octal field of `width` bytes holds (width-1 digits + NUL).
uint64_t OctalMax(size_t width) { return (uint64_t{1} << (3 * (width - 1))) - 1; }

void PutOctal(char* field, size_t width, uint64_t v) {
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
}

void PutString(char* field, size_t width, const std::string& s) {
  std::memcpy(field, s.data(), s.size() < width ? s.size() : width);
}

// "<len> <key>=<value>\n" where <len> counts the whole record, itself included.
void AppendPaxRecord(std::string& out, const std::string& key, const std::string& value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;  // ' ' key '=' value '\n'
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  out += std::to_string(len);
  out += ' ';
  out += key;
  out += '=';
  out += value;
  out += '\n';
}

// Splits `name` into ustar prefix/name at a '/', or returns false.
bool SplitUstarName(const std::string& name, std::string* prefix, std::string* rest) {
  if (name.size() <= 100) {
    prefix->clear();
    *rest = name;
    return true;
  }
  for (size_t i = name.find('/'); i != std::string::npos; i = name.find('/', i + 1)) {
    if (i > 155) break;
    if (name.size() - i - 1 <= 100 && name.size() - i - 1 > 0) {
      *prefix = name.substr(0, i);
      *rest = name.substr(i + 1);
      return true;
    }
  }
  return false;
}

void AppendUstar(std::string& out, const std::string& name_field, const std::string& prefix_field, char type,
                 uint64_t size, uint32_t mode, int64_t mtime, uint32_t uid, uint32_t gid, const std::string& uname,
                 const std::string& gname) {
  UstarBlock b;
  std::memset(&b, 0, sizeof b);
  PutString(b.name, sizeof b.name, name_field);
  PutString(b.prefix, sizeof b.prefix, prefix_field);
  PutOctal(b.mode, sizeof b.mode, mode & 07777);
  PutOctal(b.uid, sizeof b.uid, uid <= OctalMax(sizeof b.uid) ? uid : 0);
  PutOctal(b.gid, sizeof b.gid, gid <= OctalMax(sizeof b.gid) ? gid : 0);
  PutOctal(b.size, sizeof b.size, size <= OctalMax(sizeof b.size) ? size : 0);
  uint64_t mt = mtime >= 0 && static_cast<uint64_t>(mtime) <= OctalMax(sizeof b.mtime) ? static_cast<uint64_t>(mtime) : 0;
  PutOctal(b.mtime, sizeof b.mtime, mt);
  b.typeflag = type;
  std::memcpy(b.magic, "ustar", 6);  // "ustar\0"
  std::memcpy(b.version, "00", 2);
  if (uname.size() < sizeof b.uname) PutString(b.uname, sizeof b.uname, uname);
  if (gname.size() < sizeof b.gname) PutString(b.gname, sizeof b.gname, gname);
  PutOctal(b.devmajor, sizeof b.devmajor, 0);
  PutOctal(b.devminor, sizeof b.devminor, 0);
  std::memset(b.chksum, ' ', sizeof b.chksum);
  unsigned sum = 0;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(&b);
  for (size_t i = 0; i < sizeof b; i++) sum += p[i];
  PutOctal(b.chksum, 7, sum);  // six digits, NUL, then the space already there
  out.append(reinterpret_cast<const char*>(&b), sizeof b);
}

}  // namespace

void CheckArchivePath(const std::string& path) {
  auto bad = [&](const char* why) {
    throw GutsError(Code::InvalidArgument, "invalid archive path \"" + path + "\": " + why, path);
  };
  if (path.empty()) bad("empty");
  if (path[0] == '/') bad("absolute");
  if (path.find('\0') != std::string::npos || path.find('\n') != std::string::npos) bad("control character");
  size_t start = 0;
  for (;;) {
    size_t end = path.find('/', start);
    std::string comp = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (comp.empty() || comp == "." || comp == "..") bad("empty, . or .. component");
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

void AppendTarHeader(std::string& out, const TarHeader& h) {
  std::string name = h.dir ? h.path + "/" : h.path;
  std::string prefix, rest;
  std::string pax;
  if (!SplitUstarName(name, &prefix, &rest)) {
    AppendPaxRecord(pax, "path", name);
    prefix.clear();
    rest = name.substr(0, 99);
  }
  if (h.size > OctalMax(12)) AppendPaxRecord(pax, "size", std::to_string(h.size));
  if (h.mtime < 0 || static_cast<uint64_t>(h.mtime) > OctalMax(12)) AppendPaxRecord(pax, "mtime", std::to_string(h.mtime));
  if (h.uid > OctalMax(8)) AppendPaxRecord(pax, "uid", std::to_string(h.uid));
  if (h.gid > OctalMax(8)) AppendPaxRecord(pax, "gid", std::to_string(h.gid));
  if (h.uname.size() >= 32) AppendPaxRecord(pax, "uname", h.uname);
  if (h.gname.size() >= 32) AppendPaxRecord(pax, "gname", h.gname);
  if (!pax.empty()) {
    std::string base = h.path.substr(h.path.rfind('/') + 1);
    std::string pax_name = "PaxHeaders/" + base.substr(0, 100 - 11);
    AppendUstar(out, pax_name, "", 'x', pax.size(), 0644, h.mtime, h.uid, h.gid, h.uname, h.gname);
    out += pax;
    out.append(TarPadding(pax.size()), '\0');
  }
  AppendUstar(out, rest, prefix, h.dir ? '5' : '0', h.dir ? 0 : h.size, h.mode, h.mtime, h.uid, h.gid, h.uname,
              h.gname);
}

}  // namespace guts
