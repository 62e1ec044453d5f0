// The two ways a name this program did not choose (from an image, a
// filesystem or a command line) is written into one line of text.
#pragma once

#include <string>
#include <string_view>

namespace util {

// A name for a terminal: control characters (escape sequences included),
// DEL and the backslash become \xNN; other bytes, UTF-8 included, are kept.
// JSON output has exact names instead.
std::string PrintableName(std::string_view name);

// A name in printable ASCII that reads back exactly: the backslash and the
// quote as \\ and \', bytes outside '!' to '~' (space included) as \xNN.
std::string EscapeName(std::string_view name);

}  // namespace util
