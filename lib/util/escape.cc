#include "util/escape.h"

namespace util {
namespace {

void AppendHex(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
}

}  // namespace

std::string PrintableName(std::string_view name) {
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\')
      AppendHex(out, c);
    else
      out += ch;
  }
  return out;
}

std::string EscapeName(std::string_view name) {
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\' || c == '\'')
      out += {'\\', ch};
    else if (c > ' ' && c < 0x7f)
      out += ch;
    else
      AppendHex(out, c);
  }
  return out;
}

}  // namespace util
