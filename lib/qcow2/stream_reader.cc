#include "qcow2/stream_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <optional>
#include <queue>
#include <vector>

#include "qcow2/compress.h"
#include "qcow2/format.h"
#include "qcow2/guest_order.h"
#include "qcow2/metadata_layout.h"
#include "qcow2/reader.h"
#include "qcow2/subcluster.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/seekable_input.h"
#include "util/temp_file.h"

namespace qcow2 {
namespace {

constexpr size_t kReadBytes = 1u << 20;

// Bytes of an input read in order, kept from a start offset on.
class StreamWindow {
 public:
  explicit StreamWindow(const util::File& in) : in_(in) {
    // A larger pipe lets the writer run ahead in bigger steps (fails
    // harmlessly on anything but a pipe).
    ::fcntl(in.fd(), F_SETPIPE_SZ, static_cast<int>(kReadBytes));
  }
  uint64_t start() const { return start_; }
  uint64_t end() const { return start_ + (bytes_.size() - head_); }
  // Reads until the window reaches `to` or the input ends; false at its end.
  bool ReadTo(uint64_t to) {
    while (end() < to && !eof_) {
      const size_t want = std::max<uint64_t>(kReadBytes, to - end());
      const size_t have = bytes_.size();
      // Grown to what is asked, not doubled: the window stays near the
      // largest item read.
      if (bytes_.capacity() < have + want)
        bytes_.reserve(have + want);
      bytes_.resize(have + want);
      ssize_t n;
      do {
        n = ::read(in_.fd(), bytes_.data() + have, want);
      } while (n < 0 && errno == EINTR);
      bytes_.resize(have + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n < 0)
        throw util::Error(
            util::AtOffset(in_.path(), end(), "read error: " + util::ErrnoText(errno)));
      eof_ = n == 0;
    }
    return end() >= to;
  }
  std::span<const uint8_t> Bytes(uint64_t from, uint64_t to) const {
    return std::span<const uint8_t>(bytes_).subspan(head_ + (from - start_), to - from);
  }
  // Drops the bytes before `to` (at most end()); the buffer is compacted
  // only once a good part of it is dropped, so dropping stays cheap.
  void DropTo(uint64_t to) {
    head_ += to - start_;
    start_ = to;
    if (head_ >= kReadBytes || head_ == bytes_.size()) {
      bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<ptrdiff_t>(head_));
      head_ = 0;
    }
  }

 private:
  const util::File& in_;
  std::vector<uint8_t> bytes_;
  size_t head_ = 0;  // bytes_[head_] is at offset start_
  uint64_t start_ = 0;
  bool eof_ = false;
};

// Something the conversion reads at a host offset of the image, still
// awaited, in 16 bytes: an L2 table, a run of data clusters that follow one
// another both on the host and in the guest (one item for the whole run of
// an image written in guest order), or a compressed cluster.
class Item {
 public:
  enum Kind : uint8_t { kL2, kData, kCompressed };
  // The L2 table of L1 entry `l1_index`.
  static Item Table(uint64_t host, uint64_t l1_index) { return {host, 1, l1_index, kL2}; }
  // `count` data clusters (1 to ClusterWord::kMaxLength) from guest cluster
  // `guest` on, at `host` and the clusters after it.
  static Item Data(uint64_t host, uint64_t count, uint64_t guest) {
    return {host, count, guest, kData};
  }
  // Guest cluster `guest`, compressed in a frame of `bytes` at `host`.
  static Item Compressed(uint64_t host, uint64_t bytes, uint64_t guest) {
    return {host, bytes, guest, kCompressed};
  }

  uint64_t host() const { return host_; }
  // kL2: its L1 entry; data: its (first) guest cluster.
  uint64_t index() const { return word_.guest(); }
  Kind kind() const { return static_cast<Kind>(word_.tag()); }
  uint64_t count() const { return kind() == kData ? word_.length() : 1; }
  uint64_t frame_bytes() const { return word_.length(); }  // kCompressed
  bool operator>(const Item& o) const { return host_ > o.host_; }

 private:
  Item(uint64_t host, uint64_t value, uint64_t index, Kind kind)
      : host_(host), word_(index, value, kind) {}
  uint64_t host_;
  ClusterWord word_;
};
static_assert(sizeof(Item) == 16);

// Says in one line that the conversion of `in` reads through the spool, and why.
void NoteSpool(const util::File& in, const StreamConvertOptions& options, const std::string& why) {
  if (options.note)
    options.note(in.path() + ": " + why + ": reading it through a temporary spool file in " +
                 options.spool_dir);
}

// The one-pass conversion of an image with standard L2 entries.
class StreamConverter {
 public:
  StreamConverter(const util::File& in, StreamWindow& window, Header header, util::RawWriter& out,
                  const StreamConvertOptions& options)
      : in_(in), window_(window), h_(std::move(header)), out_(out), options_(options) {
    cluster_.resize(h_.cluster_size());
    if (!out_.CanRewind())
      order_.emplace(h_.l2_entries());
  }

  void Run() {
    if (h_.l1_size)
      ReadL1Table();
    while (!items_.empty()) {
      Item item = items_.top();
      items_.pop();
      if (item.count() > 1) {  // the first of a run now, the rest in its turn
        items_.push(
            Item::Data(item.host() + h_.cluster_size(), item.count() - 1, item.index() + 1));
        item = Item::Data(item.host(), 1, item.index());
      }
      // Equal offsets come out one after the other. qemu never shares an
      // L2 table, and a shared one would let a small stream describe a huge
      // disk of data, as the file reader refuses too.
      if (item.kind() == Item::kL2 && last_table_ && last_table_->host() == item.host())
        throw util::Error(util::AtOffset(in_.path(), h_.l1_table_offset + item.index() * 8,
                                         "L1 entries " + std::to_string(last_table_->index()) +
                                             " and " + std::to_string(item.index()) +
                                             " share the L2 table at offset " +
                                             std::to_string(item.host())));
      if (item.kind() == Item::kL2)
        last_table_ = item;
      Process(item, Fetch(item));
      if (order_)
        WriteHeld();
    }
    assert((!order_ || order_->Done()) && "every mapped guest cluster is written");
    // The rest (snapshots, bitmaps, padding) is read to the end, so that
    // whatever writes the pipe finishes normally.
    while (window_.ReadTo(window_.end() + kReadBytes))
      window_.DropTo(window_.end());
    window_.DropTo(window_.end());
    out_.Finish(h_.size);
  }

 private:
  std::string Describe(const Item& item) const {
    switch (item.kind()) {
      case Item::kL2:
        return "L1 entry " + std::to_string(item.index()) + ": its L2 table";
      default:
        return "the data of guest offset " + std::to_string(item.index() * h_.cluster_size());
    }
  }

  void Push(const Item& item) {
    if (item.kind() == Item::kL2)
      ++l2_pending_;
    items_.push(item);
  }
  bool TablesPending() const { return l1_pending_ || l2_pending_ != 0; }

  // The bytes an item (a single cluster) spans on the host.
  uint64_t Length(const Item& item) const {
    switch (item.kind()) {
      case Item::kL2:
        return h_.cluster_size();
      case Item::kData:
        return std::min(h_.cluster_size(), h_.size - item.index() * h_.cluster_size());
      default:
        return item.frame_bytes();
    }
  }

  // Moves the window's start to `to`, keeping in the spool what no item
  // read claimed while some table may still point at it. The bytes before
  // `to` pass through the window a step at a time: an item far ahead (a
  // hostile offset, or gigabytes of an old snapshot's data) costs no more
  // memory than a near one.
  void Advance(uint64_t to) {
    while (window_.start() < to) {
      const uint64_t step = std::min(to, std::max(window_.end(), window_.start() + kReadBytes));
      window_.ReadTo(step);
      const uint64_t until = std::min(step, window_.end());  // a truncated stream: Fetch says so
      const uint64_t from = std::max(window_.start(), claimed_to_);
      if (TablesPending() && from < until)
        Spool(from, until);
      window_.DropTo(until);
      if (until < step)
        return;
    }
  }

  // Opens the spool file on first use; false (with spool_error_ saying
  // why) when none can be made.
  bool OpenSpool() {
    if (!spool_.is_open() && spool_error_.empty()) {
      try {
        spool_ = util::AnonymousTempFile(options_.spool_dir, "spool of " + in_.path());
      } catch (const util::Error& e) {
        spool_error_ = e.what();
      }
    }
    return spool_.is_open();
  }

  void Spool(uint64_t from, uint64_t to) {
    if (!OpenSpool())
      return;
    spool_.WriteAt(window_.Bytes(from, to), from);
    if (!spooled_.empty() && spooled_.back().second == from)
      spooled_.back().second = to;
    else
      spooled_.emplace_back(from, to);
  }

  bool Spooled(uint64_t from, uint64_t to) const {
    auto it = std::upper_bound(spooled_.begin(), spooled_.end(), std::make_pair(from, UINT64_MAX));
    return it != spooled_.begin() && std::prev(it)->first <= from && std::prev(it)->second >= to;
  }

  std::span<const uint8_t> Fetch(const Item& item) {
    const uint64_t length = Length(item);
    fetched_from_spool_ = false;
    if (item.host() >= window_.start()) {
      Advance(item.host());
      uint64_t end = item.host() + length;
      if (!window_.ReadTo(end)) {
        // A compressed cluster's length is rounded up to a sector: the
        // stream may end inside that rounding.
        if (item.kind() != Item::kCompressed || window_.end() <= item.host())
          throw Truncated(Describe(item), item.host(), item.host() + length);
        end = window_.end();
      }
      // A compressed cluster's rounded length may run into the next
      // cluster's frame, which a table still to come may map: its bytes
      // stay unclaimed.
      if (item.kind() != Item::kCompressed)
        claimed_to_ = std::max(claimed_to_, end);
      return window_.Bytes(item.host(), end);
    }
    // Behind the stream: only the spool can have it.
    const uint64_t end = std::min(item.host() + length, window_.start());
    if (!Spooled(item.host(), end))
      throw util::Error(util::AtOffset(
          in_.path(), item.host(),
          Describe(item) + " lies before offset " + std::to_string(window_.start()) +
              ", which the stream has passed, and it was not kept" +
              (spool_error_.empty() ? " (a table after its data, or tables overlapping)"
                                    : " (no spool file: " + spool_error_ + ")")));
    Note("its tables come after data they map");
    fetched_from_spool_ = end == item.host() + length;
    behind_.resize(length);
    spool_.ReadAt(std::span<uint8_t>(behind_.data(), end - item.host()), item.host());
    if (end < item.host() + length) {  // the rest is still in the window
      window_.ReadTo(item.host() + length);
      const std::span<const uint8_t> rest =
          window_.Bytes(end, std::min(item.host() + length, window_.end()));
      std::copy(rest.begin(), rest.end(), behind_.begin() + (end - item.host()));
      behind_.resize(end - item.host() + rest.size());
    }
    return behind_;
  }

  // Reads the L1 table (up to 32 MiB) a part at a time, so that the window
  // never holds it whole. Its bytes are dropped as they are read, and not
  // spooled: a table or data lying inside the L1 table is refused, as a
  // file's reader refuses it. A truncated table is reported before a bad
  // entry, as when the table was read whole.
  void ReadL1Table() {
    const uint64_t l1 = h_.l1_table_offset;
    const uint64_t end = l1 + uint64_t{h_.l1_size} * 8;
    l1_pending_ = true;
    std::optional<util::Error> misaligned;
    for (uint64_t from = l1; from < end; from += kReadBytes) {
      const uint64_t to = std::min(end, from + kReadBytes);
      Advance(from);
      if (!window_.ReadTo(to))
        throw Truncated("the L1 table", l1, end);
      claimed_to_ = std::max(claimed_to_, to);
      const std::span<const uint8_t> bytes = window_.Bytes(from, to);
      for (uint64_t i = (from - l1) / 8; i < (to - l1) / 8; ++i)
        if (!misaligned)
          misaligned = L1Entry(i, util::LoadBE64(&bytes[i * 8 - (from - l1)]));
    }
    Advance(end);  // its last part too: what lies inside it is refused alike
    if (misaligned)
      throw *misaligned;
    l1_pending_ = false;
    if (order_)
      order_->L1Read();
  }

  // Awaits the L2 table of L1 entry `i` (`raw`), if any; or says why it is bad.
  std::optional<util::Error> L1Entry(uint64_t i, uint64_t raw) {
    const uint64_t entry = raw & kL1OffsetMask;
    if (!entry)
      return std::nullopt;
    if (entry % h_.cluster_size())
      return util::Error(util::AtOffset(in_.path(), h_.l1_table_offset + i * 8,
                                        "L1 entry " + std::to_string(i) + ": L2 table offset " +
                                            std::to_string(entry) + " is not cluster aligned"));
    Push(Item::Table(entry, i));
    if (order_)
      order_->TableDue(i);
    return std::nullopt;
  }

  // The stream ended inside `what`, at [from, to).
  util::Error Truncated(const std::string& what, uint64_t from, uint64_t to) const {
    return util::Error(util::AtOffset(in_.path(), window_.end(),
                                      "the stream ends inside " + what + " (" +
                                          std::to_string(to - from) + " bytes at offset " +
                                          std::to_string(from) + "): truncated"));
  }

  void Process(const Item& item, std::span<const uint8_t> bytes) {
    switch (item.kind()) {
      case Item::kL2:
        --l2_pending_;
        ReadL2Table(item, bytes);
        if (order_)
          order_->TableRead(item.index());
        return;
      case Item::kData:
      case Item::kCompressed:
        if (!order_ || order_->IsNext(item.index())) {
          WriteCluster(item, bytes);
          if (order_)
            order_->Written(item.index());
        } else {
          Hold(item, bytes);
        }
        return;
    }
  }

  void WriteCluster(const Item& item, std::span<const uint8_t> bytes) {
    if (item.kind() == Item::kCompressed) {
      if (!DecompressCluster(h_.compression_type, bytes, cluster_))
        throw util::Error(util::AtOffset(in_.path(), item.host(),
                                         Describe(item) + ": compressed data is corrupt"));
      bytes = cluster_;
    }
    Write(item.index() * h_.cluster_size(), bytes);
  }

  // Keeps a data cluster that came before its turn in the guest order, at
  // its own offset in the spool (where it may be already).
  void Hold(const Item& item, std::span<const uint8_t> bytes) {
    if (!fetched_from_spool_) {
      if (!OpenSpool())
        throw util::Error(util::AtOffset(in_.path(), item.host(),
                                         Describe(item) + " comes before data the output needs "
                                                          "first (the image's data is not in "
                                                          "guest order)") +
                          ", and there is no spool file to keep it in: " + spool_error_);
      spool_.WriteAt(bytes, item.host());
    }
    Note("its data is not in guest order");
    // The length kept: a compressed cluster may be cut by the stream's end.
    order_->Hold({item.index(), item.host(), bytes.size(), item.kind() == Item::kCompressed});
  }

  // Writes the held clusters whose turn has come.
  void WriteHeld() {
    while (const std::optional<HeldCluster> held = order_->NextHeld()) {
      held_.resize(held->length());
      spool_.ReadAt(held_, held->host());
      WriteCluster(held->compressed()
                       ? Item::Compressed(held->host(), held->length(), held->guest_cluster())
                       : Item::Data(held->host(), 1, held->guest_cluster()),
                   held_);
      order_->Written(held->guest_cluster());
      order_->DropHeld();
    }
  }

  void Note(const std::string& why) {
    if (!noted_)
      NoteSpool(in_, options_, why);
    noted_ = true;
  }

  void ReadL2Table(const Item& table, std::span<const uint8_t> bytes) {
    const uint64_t cs = h_.cluster_size();
    std::optional<Item> data;  // a run of data clusters, pushed once it ends
    uint64_t run_first = 0;    // a run of mapped guest clusters, for order_
    uint64_t run_end = 0;
    for (uint64_t j = 0; j < h_.l2_entries(); ++j) {
      const uint64_t guest = table.index() * h_.l2_entries() + j;
      if (guest * cs >= h_.size)
        break;
      // The rules a file's entries obey, so that a pipe takes what a file does.
      const ClusterDescriptor d = DecodeDescriptor(util::LoadBE64(&bytes[j * 8]), 0, h_, false);
      if (std::string problem = DescriptorProblem(d, h_, false); !problem.empty())
        throw util::Error(util::AtOffset(in_.path(), table.host() + j * 8,
                                         Describe(table) + ", entry " + std::to_string(j) +
                                             " (guest cluster " + std::to_string(guest) +
                                             "): " + problem));
      const ClusterKind kind = d.SubclusterKind(0);
      if (kind == ClusterKind::kNormal) {
        if (data && data->host() + data->count() * cs == d.host_offset &&
            data->index() + data->count() == guest) {
          data = Item::Data(data->host(), data->count() + 1, data->index());
        } else {
          if (data)
            Push(*data);
          data = Item::Data(d.host_offset, 1, guest);
        }
      } else if (kind == ClusterKind::kCompressed) {
        Push(Item::Compressed(d.host_offset, d.compressed_size, guest));
      } else {
        continue;
      }
      if (order_ && guest != run_end) {
        if (run_first != run_end)
          order_->Map(run_first, run_end);
        run_first = guest;
      }
      run_end = guest + 1;
    }
    if (data)
      Push(*data);
    if (order_ && run_first != run_end)
      order_->Map(run_first, run_end);
  }

  // Writes guest bytes; an output that can rewind takes them in any order.
  void Write(uint64_t guest_offset, std::span<const uint8_t> bytes) {
    bytes = bytes.first(std::min<uint64_t>(bytes.size(), h_.size - guest_offset));
    if (guest_offset < written_to_)
      out_.Rewind();  // only an output that can rewind takes data out of guest order
    out_.Write(guest_offset, bytes);
    written_to_ = guest_offset + bytes.size();
    if (options_.progress)
      options_.progress(window_.start());
  }

  const util::File& in_;
  StreamWindow& window_;
  Header h_;
  util::RawWriter& out_;
  const StreamConvertOptions& options_;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> items_;
  std::optional<Item> last_table_;  // the last L2 table read
  bool l1_pending_ = false;
  uint64_t l2_pending_ = 0;
  uint64_t claimed_to_ = 0;  // the end of the furthest item read from the window
  uint64_t written_to_ = 0;
  util::File spool_;
  std::string spool_error_;
  std::vector<std::pair<uint64_t, uint64_t>> spooled_;  // ascending, disjoint
  bool noted_ = false;
  bool fetched_from_spool_ = false;  // the last item fetched is all in the spool
  std::vector<uint8_t> behind_;
  std::vector<uint8_t> cluster_;
  std::optional<GuestOrder> order_;  // set for an output written in guest order only
  std::vector<uint8_t> held_;
};

// Copies the whole stream into a spool file (the window's bytes, which are
// the stream's first ones, then the rest) and converts that as a file. Once
// written, the spool is named as the stream: the errors found in the image
// name what the user gave, at the stream's own offsets. The caller has
// refused backing and data files; a spool has no directory to find them in
// anyway, so the reader would refuse them too.
void ConvertThroughSpool(const util::File& in, const StreamWindow& window, util::RawWriter& out,
                         const StreamConvertOptions& options, const std::string& why) {
  assert(window.start() == 0 && "the window holds the stream from its start");
  util::File spool = util::AnonymousTempFile(options.spool_dir, "spool of " + in.path());
  NoteSpool(in, options, why);
  util::SpoolToEnd(in.fd(), in.path(), window.Bytes(0, window.end()), spool);
  spool.NameAs(in.path());
  ReferencePolicy policy;
  policy.unreachable = "cannot be reached from an image read from a pipe: convert it from a file";
  Qcow2Reader reader(std::move(spool), policy);
  ConvertToRaw(reader, out, options.progress);
}

}  // namespace

void ConvertStreamToRaw(const util::File& in, util::RawWriter& out,
                        const StreamConvertOptions& options) {
  StreamWindow window(in);
  window.ReadTo(24);
  if (!HasQcow2Magic(window.Bytes(0, std::min<uint64_t>(window.end(), 4))))
    throw util::Error(in.path() + ": not a qcow2 image (no QFI magic at its start)");
  const uint64_t header_bytes = HeaderClusterBytes(window.Bytes(0, window.end()));
  window.ReadTo(header_bytes);
  const Header h = DecodeHeader(window.Bytes(0, std::min(window.end(), header_bytes)), in.path());
  if (window.end() < header_bytes)
    throw util::Error(util::AtOffset(in.path(), window.end(),
                                     "the stream ends inside the header cluster: truncated"));
  if (!h.backing_file.empty() || h.backing_file_offset)
    throw util::Error(in.path() + ": the image has a backing file (" +
                      util::PrintableName(h.backing_file) +
                      "), which an image read from a pipe cannot reach: convert it from a file");
  if (h.incompatible_features & kIncompatDataFile)
    throw util::Error(in.path() +
                      ": the image keeps its data in an external data file, which an "
                      "image read from a pipe cannot reach: convert it from a file");
  if (h.crypt_method != 0)
    throw util::Error(in.path() + ": the image is encrypted");
  if (h.incompatible_features & ~kIncompatKnown)
    throw util::Error(in.path() + ": unknown incompatible features: " +
                      DescribeIncompatibleBits(h, h.incompatible_features & ~kIncompatKnown));
  if (h.l1_size > kMaxL1Bytes / 8)
    throw util::Error(util::AtOffset(in.path(), 36, "L1 table over the 32 MiB limit"));
  if (h.l1_table_offset % h.cluster_size())
    throw util::Error(util::AtOffset(in.path(), 40, "L1 table offset is not cluster aligned"));
  if (h.extended_l2()) {
    ConvertThroughSpool(in, window, out, options, "its L2 entries are extended (subclusters)");
    return;
  }
  StreamConverter(in, window, h, out, options).Run();
}

}  // namespace qcow2
