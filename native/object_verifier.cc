#include "object_verifier.h"
namespace guts {
void InitObjectVerifier(Napi::Env env, Napi::Object exports) {}
}  // namespace guts
