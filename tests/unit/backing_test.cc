// Names of backing and external data files, as a qcow2 header gives them.
#include "qcow2/backing.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace qcow2 {
namespace {

TEST(Backing, RelativeNamesAreResolvedAgainstTheImageDirectory) {
  EXPECT_EQ(ResolveReferencedPath("/a/b/top.qcow2", "base.raw", "backing file"), "/a/b/base.raw");
  EXPECT_EQ(ResolveReferencedPath("b/top.qcow2", "../base.raw", "backing file"), "b/../base.raw");
  EXPECT_EQ(ResolveReferencedPath("top.qcow2", "sub/base.raw", "backing file"), "sub/base.raw");
}

TEST(Backing, AbsoluteNamesAndFilePrefix) {
  EXPECT_EQ(ResolveReferencedPath("/a/top.qcow2", "/x/base", "backing file"), "/x/base");
  EXPECT_EQ(ResolveReferencedPath("/a/top.qcow2", "file:base", "backing file"), "/a/base");
  EXPECT_EQ(ResolveReferencedPath("/a/top.qcow2", "dir/with:colon", "backing file"),
            "/a/dir/with:colon");
}

TEST(Backing, ProtocolsAndEmptyNamesAreRefused) {
  EXPECT_THROW(ResolveReferencedPath("/a/top", "nbd://host/x", "backing file"), util::Error);
  EXPECT_THROW(ResolveReferencedPath("/a/top", "json:{}", "backing file"), util::Error);
  EXPECT_THROW(ResolveReferencedPath("/a/top", "", "backing file"), util::Error);
  EXPECT_THROW(ResolveReferencedPath("/a/top", "file:", "backing file"), util::Error);
}

TEST(Backing, DataFileNameComesFromItsExtension) {
  Header h;
  EXPECT_EQ(DataFileName(h), "");
  h.extensions.push_back({kExtDataFile, {'d', '.', 'r', 'a', 'w'}});
  EXPECT_EQ(DataFileName(h), "d.raw");
}

}  // namespace
}  // namespace qcow2
