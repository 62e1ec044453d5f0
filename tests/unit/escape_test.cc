// The two escapes of names this program did not choose.
#include "util/escape.h"

#include <gtest/gtest.h>

#include <string>

namespace util {
namespace {

TEST(PrintableName, KeepsUtf8AndEscapesControlsDelAndBackslash) {
  EXPECT_EQ(PrintableName("caf\xc3\xa9 x.qcow2"), "caf\xc3\xa9 x.qcow2");
  EXPECT_EQ(PrintableName("a\nb\x1b[2J\x7f\\'"), "a\\x0ab\\x1b[2J\\x7f\\x5c'");
  EXPECT_EQ(PrintableName(std::string("\0z", 2)), "\\x00z");
}

TEST(EscapeName, PrintableAsciiOnlyAndReadsBackExactly) {
  EXPECT_EQ(EscapeName("abc-1.txt"), "abc-1.txt");
  EXPECT_EQ(EscapeName("a b\\'\xc3\xa9"), "a\\x20b\\\\\\'\\xc3\\xa9");
  EXPECT_EQ(EscapeName(std::string("\0\x7f", 2)), "\\x00\\x7f");
}

}  // namespace
}  // namespace util
