#include "e2img/unreadable.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "util/error.h"

namespace e2img {

namespace {

// One pread loop: the bytes read, and the errno of the read that failed (0
// when none did; the bytes read then end at the end of the file).
struct RawRead {
  size_t got = 0;
  int error = 0;
};

RawRead ReadRaw(const PositionedRead& read, std::span<uint8_t> buf, uint64_t offset) {
  RawRead r;
  while (r.got < buf.size()) {
    const ssize_t n = read(buf.subspan(r.got), offset + r.got);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      r.error = errno;
      return r;
    }
    if (n == 0)
      break;
    r.got += static_cast<size_t>(n);
  }
  return r;
}

[[noreturn]] void ThrowReadError(const std::string& path, uint64_t offset, int error) {
  throw util::Error(util::AtOffset(path, offset, "read error: " + util::ErrnoText(error)));
}

// The length of the piece of at most `size` bytes from `offset`, cut at the
// next multiple of `size` so that pieces line up with the device's sectors.
size_t PieceLength(uint64_t offset, size_t size, size_t left) {
  return std::min<size_t>(size - offset % size, left);
}

// Appends [offset, offset + length) to sorted ranges, merging a touching one.
void AppendRange(std::vector<ByteRange>& ranges, uint64_t offset, uint64_t length) {
  if (!ranges.empty() && ranges.back().end() == offset)
    ranges.back().length += length;
  else
    ranges.push_back({offset, length});
}

std::string Hex(uint64_t v) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%08" PRIX64, v);
  return text;
}

}  // namespace

UnreadableLog::UnreadableLog(std::string device, uint64_t fs_offset, uint32_t block_size,
                             WarnFn warn, std::string outcome)
    : device_(std::move(device)),
      fs_offset_(fs_offset),
      block_size_(block_size),
      warn_(std::move(warn)),
      outcome_(std::move(outcome)) {}

std::string UnreadableLog::Describe(ByteRange r) const {
  std::string text = device_ + ": unreadable: " + std::to_string(r.length) + " bytes at offset " +
                     std::to_string(r.offset);
  if (r.end() > fs_offset_ && block_size_) {
    const uint64_t first = (std::max(r.offset, fs_offset_) - fs_offset_) / block_size_;
    const uint64_t last = (r.end() - 1 - fs_offset_) / block_size_;
    text += first == last ? " (block " + std::to_string(first) + ")"
                          : " (blocks " + std::to_string(first) + "-" + std::to_string(last) + ")";
  }
  return text + "; " + outcome_;
}

void UnreadableLog::Add(ByteRange range) {
  if (!range.length)
    return;
  std::vector<ByteRange> fresh;
  {
    const std::lock_guard lock(mutex_);
    fresh = ranges_.Add(range);
  }
  if (warn_)
    for (const ByteRange& r : fresh)
      warn_(Describe(r));
}

std::vector<ByteRange> UnreadableLog::Ranges() const {
  const std::lock_guard lock(mutex_);
  std::vector<ByteRange> out;
  for (const auto& [start, end] : ranges_.ranges())
    out.push_back({start, end - start});
  return out;
}

std::vector<ByteRange> UnreadableLog::GuestRanges() const {
  std::vector<ByteRange> out;
  for (ByteRange r : Ranges()) {
    if (r.end() <= fs_offset_)
      continue;
    const uint64_t start = std::max(r.offset, fs_offset_);
    out.push_back({start - fs_offset_, r.end() - start});
  }
  return out;
}

uint64_t UnreadableLog::BlockCount() const {
  uint64_t count = 0;
  uint64_t next = 0;  // the first block not counted yet
  for (const ByteRange& r : GuestRanges()) {
    const uint64_t first = std::max(next, r.offset / block_size_);
    const uint64_t end = (r.end() + block_size_ - 1) / block_size_;
    if (end > first)
      count += end - first;
    next = std::max(next, end);
  }
  return count;
}

bool UnreadableLog::empty() const {
  const std::lock_guard lock(mutex_);
  return ranges_.empty();
}

bool IsMediaError(int errnum) {
  return errnum == EIO || errnum == ENODATA || errnum == EILSEQ || errnum == EBADMSG ||
         errnum == ENXIO || errnum == EREMOTEIO;
}

size_t ReadSalvaging(const util::File& file, std::span<uint8_t> buf, uint64_t offset,
                     UnreadableLog& log) {
  const int fd = file.fd();
  return ReadSalvaging(
      [fd](std::span<uint8_t> b, uint64_t at) {
        return ::pread(fd, b.data(), b.size(), static_cast<off_t>(at));
      },
      file.path(), buf, offset, log);
}

size_t ReadSalvaging(const PositionedRead& read, const std::string& path, std::span<uint8_t> buf,
                     uint64_t offset, UnreadableLog& log) {
  const RawRead whole = ReadRaw(read, buf, offset);
  if (!whole.error)
    return whole.got;
  if (!IsMediaError(whole.error))
    ThrowReadError(path, offset + whole.got, whole.error);
  constexpr size_t kPieceSize = 4096;
  std::vector<ByteRange> bad;
  size_t end = buf.size();  // lowered where the file turns out to end
  for (size_t p = whole.got; p < end;) {
    const size_t n = PieceLength(offset + p, kPieceSize, end - p);
    const RawRead piece = ReadRaw(read, buf.subspan(p, n), offset + p);
    if (!piece.error && piece.got < n) {
      end = p + piece.got;
      break;
    }
    if (piece.error && !IsMediaError(piece.error))
      ThrowReadError(path, offset + p + piece.got, piece.error);
    if (piece.error) {
      for (size_t s = p; s < p + n;) {
        const size_t m = PieceLength(offset + s, kSectorSize, p + n - s);
        const RawRead sector = ReadRaw(read, buf.subspan(s, m), offset + s);
        if (sector.error && !IsMediaError(sector.error))
          ThrowReadError(path, offset + s + sector.got, sector.error);
        if (sector.error) {
          std::fill_n(buf.begin() + static_cast<std::ptrdiff_t>(s), m, 0);
          AppendRange(bad, offset + s, m);
        } else if (sector.got < m) {
          end = s + sector.got;
          break;
        }
        s += m;
      }
    }
    p += n;
  }
  for (const ByteRange& r : bad)
    log.Add(r);
  return end;
}

LibextReadSalvage::LibextReadSalvage(ext2_filsys fs, const util::File& file, UnreadableLog& log)
    : fs_(fs), file_(file), log_(log) {
  fs_->io->app_data = this;
  fs_->io->read_error = &LibextReadSalvage::OnReadError;
}

LibextReadSalvage::~LibextReadSalvage() {
  fs_->io->read_error = nullptr;
  fs_->io->app_data = nullptr;
}

errcode_t LibextReadSalvage::OnReadError(io_channel channel, unsigned long block, int /*count*/,
                                         void* data, size_t size, int /*actual*/, errcode_t error) {
  auto* self = static_cast<LibextReadSalvage*>(channel->app_data);
  if (!self || error > 0xffff || !IsMediaError(static_cast<int>(error)))
    return error;
  // The exception cannot cross libext2fs's C frames: a read error that is not
  // the medium's goes back as the original error.
  try {
    const uint64_t at = self->log_.fs_offset() + uint64_t{block} * channel->block_size;
    std::span<uint8_t> buf(static_cast<uint8_t*>(data), size);
    const size_t got = ReadSalvaging(self->file_, buf, at, self->log_);
    std::fill(buf.begin() + static_cast<std::ptrdiff_t>(got), buf.end(), 0);
    return got < size ? EXT2_ET_SHORT_READ : 0;
  } catch (const util::Error&) {
    return error;
  }
}

std::string DdrescueMap(const std::vector<ByteRange>& ranges, uint64_t domain_start,
                        uint64_t domain_end, const std::vector<std::string>& comments) {
  std::string text;
  for (const std::string& c : comments)
    text += "# " + c + "\n";
  text += "# current_pos  current_status  current_pass\n";
  text += Hex(domain_end) + "     +               1\n";
  text += "#      pos        size  status\n";
  const auto line = [&](uint64_t pos, uint64_t size, char status) {
    if (size)
      text += Hex(pos) + "  " + Hex(size) + "  " + status + "\n";
  };
  line(0, std::min(domain_start, domain_end), '?');
  uint64_t pos = std::min(domain_start, domain_end);
  for (const ByteRange& r : ranges) {
    const uint64_t lo = std::clamp(r.offset, pos, domain_end);
    const uint64_t hi = std::clamp(r.end(), lo, domain_end);
    line(pos, lo - pos, '+');
    line(lo, hi - lo, '-');
    pos = hi;
  }
  line(pos, domain_end - pos, '+');
  return text;
}

}  // namespace e2img
