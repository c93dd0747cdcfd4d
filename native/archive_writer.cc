#include "archive_writer.h"
namespace guts {
void InitArchiveWriter(Napi::Env env, Napi::Object exports) {}
}  // namespace guts
