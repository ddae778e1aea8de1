#include "worker/engine/datasets/idx_dataset.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "common/quote.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

// A header that claims more than this is corrupt rather than a dataset this process could hold.
constexpr int64_t kMaxDataBytes = int64_t{1} << 36;  // 64 GiB
// gzread takes an unsigned int length; read in pieces well below that.
constexpr int64_t kReadChunkBytes = int64_t{1} << 28;

std::string Hex(unsigned value) {
  std::ostringstream os;
  os << "0x" << std::hex << (value < 16 ? "0" : "") << value;
  return os.str();
}

struct IdxType {
  at::ScalarType dtype;
  int64_t element_size;
  const char* name;
};

bool LookUpType(unsigned code, IdxType* type) {
  switch (code) {
    case 0x08: *type = {at::kByte, 1, "uint8"}; return true;
    case 0x09: *type = {at::kChar, 1, "int8"}; return true;
    case 0x0B: *type = {at::kShort, 2, "int16"}; return true;
    case 0x0C: *type = {at::kInt, 4, "int32"}; return true;
    case 0x0D: *type = {at::kFloat, 4, "float32"}; return true;
    case 0x0E: *type = {at::kDouble, 8, "float64"}; return true;
    default: return false;
  }
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFilePtr = std::unique_ptr<gzFile_s, GzCloser>;

// An open IDX file whose header has been read; ReadElements then reads (part of) the data.
class IdxReader {
 public:
  static StatusOr<IdxReader> Open(const std::string& path) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) return NotFoundError("IDX file " + Quote(path) + " does not exist");
    if (!fs::is_regular_file(st)) return InvalidArgumentError("IDX path " + Quote(path) + " is not a regular file");
    errno = 0;
    GzFilePtr file(gzopen(path.c_str(), "rb"));
    if (file == nullptr) {
      return UnavailableError("cannot open IDX file " + Quote(path) + ": " +
                              (errno != 0 ? std::strerror(errno) : "zlib could not allocate its state"));
    }
    gzbuffer(file.get(), 1 << 17);
    IdxReader reader(path, std::move(file));
    DWARP_RETURN_IF_ERROR(reader.ReadHeader());
    return reader;
  }

  const std::string& path() const { return path_; }
  const IdxType& type() const { return type_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  std::string ShapeString() const {
    std::ostringstream os;
    os << at::IntArrayRef(shape_);
    return os.str();
  }

  // Reads the first min(max_items, shape[0]) entries (all when max_items < 0) into a tensor.
  StatusOr<at::Tensor> ReadElements(int64_t max_items) {
    std::vector<int64_t> shape = shape_;
    const bool whole_file = max_items < 0 || max_items >= shape[0];
    if (!whole_file) shape[0] = max_items;
    at::Tensor out = at::empty(shape, at::TensorOptions().dtype(type_.dtype));
    const int64_t bytes = out.numel() * type_.element_size;
    DWARP_RETURN_IF_ERROR(ReadExactly(out.data_ptr(), bytes, "data of shape " + ShapeString()));
    if (whole_file) {
      char extra;
      const int got = gzread(file_.get(), &extra, 1);
      if (got < 0) return CorruptError();
      if (got > 0) {
        return InvalidArgumentError("IDX file " + Quote(path_) + " has bytes after the " + std::to_string(out.numel()) +
                                    " elements its header declares (shape " + ShapeString() + ")");
      }
    }
    ToHostOrder(static_cast<unsigned char*>(out.data_ptr()), out.numel(), type_.element_size);
    return out;
  }

 private:
  IdxReader(std::string path, GzFilePtr file) : path_(std::move(path)), file_(std::move(file)) {}

  Status CorruptError() {
    int code = Z_OK;
    const char* message = gzerror(file_.get(), &code);
    return InvalidArgumentError("IDX file " + Quote(path_) + " is corrupt: " +
                                (code == Z_ERRNO ? std::strerror(errno) : message));
  }

  // Reads exactly `bytes` bytes of `what`, or fails naming how many were missing.
  Status ReadExactly(void* dst, int64_t bytes, const std::string& what) {
    auto* out = static_cast<unsigned char*>(dst);
    int64_t done = 0;
    while (done < bytes) {
      const auto want = static_cast<unsigned>(std::min(bytes - done, kReadChunkBytes));
      const int got = gzread(file_.get(), out + done, want);
      if (got < 0) return CorruptError();
      if (got == 0) {
        int code = Z_OK;
        gzerror(file_.get(), &code);
        if (code != Z_OK && code != Z_BUF_ERROR) return CorruptError();
        return InvalidArgumentError("IDX file " + Quote(path_) + " is truncated: " + what + " needs " +
                                    std::to_string(bytes) + " bytes, the file ends after " + std::to_string(done));
      }
      done += got;
    }
    return OkStatus();
  }

  Status ReadHeader() {
    unsigned char magic[4];
    DWARP_RETURN_IF_ERROR(ReadExactly(magic, 4, "the 4-byte magic number"));
    if (magic[0] != 0 || magic[1] != 0) {
      // The bytes found are not quoted: a job may name any file, and its first bytes are its contents.
      return InvalidArgumentError("IDX file " + Quote(path_) +
                                  " has bad magic: it does not start with 0x00 0x00 <type> <ndim>; is it an IDX file?");
    }
    if (!LookUpType(magic[2], &type_)) {
      return InvalidArgumentError("IDX file " + Quote(path_) + " has unknown element type code " + Hex(magic[2]) +
                                  "; expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e");
    }
    const int ndim = magic[3];
    if (ndim < 1) {
      return InvalidArgumentError("IDX file " + Quote(path_) + " declares 0 dimensions; expected at least 1");
    }
    std::vector<unsigned char> sizes(4 * static_cast<size_t>(ndim));
    DWARP_RETURN_IF_ERROR(ReadExactly(sizes.data(), static_cast<int64_t>(sizes.size()),
                                      "the " + std::to_string(ndim) + " dimension sizes"));
    int64_t bytes = type_.element_size;
    for (int i = 0; i < ndim; ++i) {
      const unsigned char* b = &sizes[4 * static_cast<size_t>(i)];
      const int64_t size = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | int64_t{b[3]};
      shape_.push_back(size);
      if (size > 0 && bytes > kMaxDataBytes / size) {
        return InvalidArgumentError("IDX file " + Quote(path_) + " declares a shape whose data exceeds " +
                                    std::to_string(kMaxDataBytes) + " bytes (dimension " + std::to_string(i) +
                                    " has size " + std::to_string(size) + "); the header is corrupt");
      }
      bytes *= std::max<int64_t>(size, 1);
    }
    return OkStatus();
  }

  static void ToHostOrder(unsigned char* data, int64_t count, int64_t element_size) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    (void)data, (void)count, (void)element_size;
#else
    if (element_size == 1) return;
    for (int64_t i = 0; i < count; ++i) std::reverse(data + i * element_size, data + (i + 1) * element_size);
#endif
  }

  std::string path_;
  GzFilePtr file_;
  IdxType type_{};
  std::vector<int64_t> shape_;
};

// `dir`/`name` or `dir`/`name`.gz, whichever exists (the uncompressed file first).
StatusOr<std::string> FindWithOptionalGz(const std::string& dir, const std::string& name) {
  const fs::path plain = fs::path(dir) / name;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  std::error_code ec;
  if (fs::exists(plain, ec)) return plain.string();
  if (fs::exists(gz, ec)) return gz.string();
  return NotFoundError("no IDX file " + Quote(plain.string()) + " or " + Quote(gz.string()));
}

}  // namespace

StatusOr<at::Tensor> ReadIdxFile(const std::string& path, const IdxReadOptions& options) {
  auto reader = IdxReader::Open(path);
  if (!reader.ok()) return reader.status();
  return reader->ReadElements(options.max_items_);
}

StatusOr<ClassificationData> LoadIdxClassification(const std::string& images_path, const std::string& labels_path,
                                                   const IdxClassificationOptions& options) {
  if (options.num_classes_ < 0) {
    return InvalidArgumentError("num_classes = " + std::to_string(options.num_classes_) +
                                "; expected >= 1, or 0 to infer it from the labels");
  }
  auto images = IdxReader::Open(images_path);
  if (!images.ok()) return images.status();
  auto labels = IdxReader::Open(labels_path);
  if (!labels.ok()) return labels.status();

  if (images->shape().size() != 3) {
    return InvalidArgumentError("IDX images file " + Quote(images_path) + " has shape " + images->ShapeString() +
                                "; expected 3 dimensions [N, H, W]");
  }
  const at::ScalarType image_type = images->type().dtype;
  if (image_type != at::kByte && !at::isFloatingType(image_type)) {
    return InvalidArgumentError("IDX images file " + Quote(images_path) + " holds " + images->type().name +
                                "; expected uint8 (scaled to [0, 1]) or float32/float64");
  }
  if (labels->shape().size() != 1) {
    return InvalidArgumentError("IDX labels file " + Quote(labels_path) + " has shape " + labels->ShapeString() +
                                "; expected 1 dimension [N]");
  }
  if (at::isFloatingType(labels->type().dtype)) {
    return InvalidArgumentError("IDX labels file " + Quote(labels_path) + " holds " + labels->type().name +
                                "; expected an integer type");
  }
  if (images->shape()[0] != labels->shape()[0]) {
    return InvalidArgumentError("IDX images file " + Quote(images_path) + " holds " +
                                std::to_string(images->shape()[0]) + " images but labels file " + Quote(labels_path) +
                                " holds " + std::to_string(labels->shape()[0]) + " labels; expected equal counts");
  }

  auto image_values = images->ReadElements(options.max_items_);
  if (!image_values.ok()) return image_values.status();
  auto label_values = labels->ReadElements(options.max_items_);
  if (!label_values.ok()) return label_values.status();

  ClassificationData data;
  data.inputs = image_type == at::kByte ? image_values->to(at::kFloat).div_(255.0f) : image_values->to(at::kFloat);
  data.inputs = data.inputs.unsqueeze(1);
  data.labels = label_values->to(at::kLong);
  data.num_classes = options.num_classes_;
  if (data.num_classes == 0) {
    data.num_classes = data.size() == 0 ? 1 : std::max<int64_t>(data.labels.max().item<int64_t>() + 1, 1);
  }
  DWARP_RETURN_IF_ERROR(CheckClassificationData(data, "IDX labels file " + Quote(labels_path)));
  return data;
}

StatusOr<ClassificationData> LoadMnistStyleSplit(const std::string& dir, const std::string& split,
                                                 const IdxClassificationOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFoundError("dataset directory " + Quote(dir) + " does not exist");
  auto images = FindWithOptionalGz(dir, split + "-images-idx3-ubyte");
  if (!images.ok()) return images.status();
  auto labels = FindWithOptionalGz(dir, split + "-labels-idx1-ubyte");
  if (!labels.ok()) return labels.status();
  return LoadIdxClassification(*images, *labels, options);
}

StatusOr<at::Tensor> PrepareIdxImages(at::Tensor images, const IdxImageOptions& options) {
  const int64_t size = options.size;
  const int64_t channels = options.channels;
  if (images.dim() == 3) images = images.unsqueeze(1);
  images = images.to(at::kFloat);
  if (size > 0 && (images.size(2) != size || images.size(3) != size)) {
    std::vector<int64_t> out{size, size};
    images = at::upsample_bilinear2d(images, at::IntArrayRef(out), false, c10::nullopt, c10::nullopt);
  }
  if (channels > 0 && images.size(1) != channels) {
    if (images.size(1) != 1) {
      return InvalidArgumentError("images have " + std::to_string(images.size(1)) + " channels; expected " +
                                  std::to_string(channels) + ", or 1 to repeat");
    }
    images = images.expand({images.size(0), channels, images.size(2), images.size(3)}).contiguous();
  }
  const int64_t c = images.size(1);
  auto column = [c](const std::vector<double>& v, double fallback) {
    std::vector<float> out(static_cast<size_t>(c), static_cast<float>(fallback));
    for (int64_t i = 0; i < c && !v.empty(); ++i) out[i] = static_cast<float>(v[std::min<size_t>(i, v.size() - 1)]);
    return at::tensor(out).view({1, c, 1, 1});
  };
  return ((images - column(options.mean, 0.0)) / column(options.stddev, 1.0)).contiguous();
}

}  // namespace dwarp::engine
