#include "qcow2/compress.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <memory>

namespace qcow2 {
namespace {

// Owns a z_stream for inflate or deflate.
class ZStream {
 public:
  explicit ZStream(bool deflate) : deflate_(deflate) {}
  ~ZStream() {
    if (ok_)
      deflate_ ? deflateEnd(&s_) : inflateEnd(&s_);
  }
  bool InitInflate() { return ok_ = inflateInit2(&s_, -12) == Z_OK; }
  bool InitDeflate(int level) {
    return ok_ = deflateInit2(&s_, level < 0 ? Z_DEFAULT_COMPRESSION : level, Z_DEFLATED, -12, 9,
                              Z_DEFAULT_STRATEGY) == Z_OK;
  }
  z_stream* get() { return &s_; }

 private:
  z_stream s_{};
  bool deflate_;
  bool ok_ = false;
};

bool InflateRaw(std::span<const uint8_t> in, std::span<uint8_t> out) {
  // One inflate state per thread, reset for each cluster.
  thread_local ZStream z(false);
  thread_local const bool ready = z.InitInflate();
  if (!ready || inflateReset(z.get()) != Z_OK)
    return false;
  z_stream* s = z.get();
  s->next_in = const_cast<Bytef*>(in.data());
  s->avail_in = static_cast<uInt>(in.size());
  s->next_out = out.data();
  s->avail_out = static_cast<uInt>(out.size());
  const int ret = inflate(s, Z_FINISH);
  // Z_BUF_ERROR with a full output buffer means trailing input, which is fine.
  if (ret != Z_STREAM_END && ret != Z_BUF_ERROR)
    return false;
  return s->avail_out == 0;
}

bool ZstdDecompress(std::span<const uint8_t> in, std::span<uint8_t> out) {
  // One decompression context per thread, reset for each cluster.
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(),
                                                                        ZSTD_freeDCtx);
  if (!ctx || ZSTD_isError(ZSTD_DCtx_reset(ctx.get(), ZSTD_reset_session_only)))
    return false;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  // Stream decoding, as qemu does: the compressed size is rounded up to
  // sectors, so bytes after the frame are expected and ignored.
  while (output.pos < output.size) {
    const size_t ret = ZSTD_decompressStream(ctx.get(), &output, &input);
    if (ZSTD_isError(ret))
      return false;
    if (ret == 0)
      break;  // frame complete
    if (input.pos == input.size)
      return false;
  }
  return output.pos == output.size;
}

}  // namespace

bool DecompressCluster(CompressionType type, std::span<const uint8_t> in, std::span<uint8_t> out) {
  return type == CompressionType::kZstd ? ZstdDecompress(in, out) : InflateRaw(in, out);
}

// The codec state of a ClusterCompressor: a zstd context, or a deflate
// stream reset for each cluster.
struct ClusterCompressor::State {
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> zstd{nullptr, ZSTD_freeCCtx};
  ZStream zlib{true};
  bool zlib_ready = false;
  // Room for the worst case, reused: a result is copied out at its exact
  // size, so queued clusters hold only what they compressed to.
  std::vector<uint8_t> scratch;
};

ClusterCompressor::ClusterCompressor(CompressionType type, int level)
    : type_(type), level_(level), state_(std::make_unique<State>()) {
  if (type_ == CompressionType::kZstd) {
    state_->zstd.reset(ZSTD_createCCtx());
    if (!state_->zstd ||
        ZSTD_isError(ZSTD_CCtx_setParameter(state_->zstd.get(), ZSTD_c_compressionLevel,
                                            level_ < 0 ? ZSTD_CLEVEL_DEFAULT : level_)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(state_->zstd.get(), ZSTD_c_contentSizeFlag, 0)))
      state_->zstd.reset();
  } else {
    state_->zlib_ready = state_->zlib.InitDeflate(level_);
  }
}

ClusterCompressor::~ClusterCompressor() = default;

std::span<const uint8_t> ClusterCompressor::Pack(std::span<const uint8_t> in) {
  std::vector<uint8_t>& out = state_->scratch;
  size_t packed_size = 0;
  if (type_ == CompressionType::kZstd) {
    if (!state_->zstd)
      return {};  // stored plain: compression is an optimisation only
    out.resize(std::max(out.size(), ZSTD_compressBound(in.size())));
    const size_t n =
        ZSTD_compress2(state_->zstd.get(), out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n))
      return {};
    packed_size = n;
  } else {
    if (!state_->zlib_ready || deflateReset(state_->zlib.get()) != Z_OK)
      return {};
    out.resize(std::max(out.size(), in.size()));
    z_stream* s = state_->zlib.get();
    s->next_in = const_cast<Bytef*>(in.data());
    s->avail_in = static_cast<uInt>(in.size());
    s->next_out = out.data();
    s->avail_out = static_cast<uInt>(in.size());
    if (deflate(s, Z_FINISH) != Z_STREAM_END)
      return {};  // did not fit: not smaller
    packed_size = in.size() - s->avail_out;
  }
  if (packed_size >= in.size())
    return {};
  return {out.data(), packed_size};
}

size_t ClusterCompressor::MemoryBytes() const {
  // A deflate state takes (1 << (windowBits + 2)) + (1 << (memLevel + 9))
  // bytes and its struct (zconf.h): windowBits 12 and memLevel 9 here.
  constexpr size_t kDeflateBytes = (size_t{1} << 14) + (size_t{1} << 18) + 8192;
  const size_t codec = type_ == CompressionType::kZstd
                           ? (state_->zstd ? ZSTD_sizeof_CCtx(state_->zstd.get()) : 0)
                           : kDeflateBytes;
  return codec + state_->scratch.capacity();
}

std::optional<std::vector<uint8_t>> ClusterCompressor::Compress(std::span<const uint8_t> in) {
  const std::span<const uint8_t> packed = Pack(in);
  if (packed.empty())
    return std::nullopt;
  return std::vector<uint8_t>(packed.begin(), packed.end());
}

std::optional<std::vector<uint8_t>> CompressCluster(CompressionType type,
                                                    std::span<const uint8_t> in, int level) {
  return ClusterCompressor(type, level).Compress(in);
}

int MaxLevel(CompressionType type) {
  return type == CompressionType::kZstd ? ZSTD_maxCLevel() : Z_BEST_COMPRESSION;
}

std::string CompressionName(CompressionType type) {
  return type == CompressionType::kZstd ? "zstd" : "zlib";
}

}  // namespace qcow2
