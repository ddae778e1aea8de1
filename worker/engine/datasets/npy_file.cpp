#include "worker/engine/datasets/npy_file.h"

#include <ATen/ATen.h>

#include <cstring>
#include <sstream>

#include "common/file_io.h"
#include "common/quote.h"

namespace dwarp::engine {
namespace {

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  size_t data_offset = 0;
};

Status HeaderError(const std::string& path, const std::string& what) {
  return InvalidArgumentError(".npy file " + Quote(path) + " has a bad header: " + what +
                              "; expected a file written by numpy.save");
}

// The value text after 'key': in the header dict, up to the matching delimiter.
bool FindValue(const std::string& header, const std::string& key, std::string* value) {
  for (const char q : {'\'', '"'}) {
    const std::string quoted = std::string(1, q) + key + std::string(1, q);
    const size_t k = header.find(quoted);
    if (k == std::string::npos) continue;
    size_t p = header.find(':', k + quoted.size());
    if (p == std::string::npos) return false;
    ++p;
    while (p < header.size() && header[p] == ' ') ++p;
    if (p >= header.size()) return false;
    if (header[p] == '\'' || header[p] == '"') {
      const size_t end = header.find(header[p], p + 1);
      if (end == std::string::npos) return false;
      *value = header.substr(p + 1, end - p - 1);
    } else if (header[p] == '(') {
      const size_t end = header.find(')', p);
      if (end == std::string::npos) return false;
      *value = header.substr(p + 1, end - p - 1);
    } else {
      size_t end = p;
      while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
      *value = header.substr(p, end - p);
      while (!value->empty() && value->back() == ' ') value->pop_back();
    }
    return true;
  }
  return false;
}

StatusOr<NpyHeader> ParseHeader(const std::string& path, const std::string& bytes) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) {
    return InvalidArgumentError(".npy file " + Quote(path) + " does not start with the magic \\x93NUMPY" +
                                "; expected a file written by numpy.save");
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (major == 1) {
    header_len = u[8] | (size_t{u[9]} << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return HeaderError(path, "file ends inside the header length");
    header_len = u[8] | (size_t{u[9]} << 8) | (size_t{u[10]} << 16) | (size_t{u[11]} << 24);
    header_start = 12;
  } else {
    return InvalidArgumentError(".npy file " + Quote(path) + " has format version " + std::to_string(major) +
                                "; expected 1, 2 or 3");
  }
  if (header_start + header_len > bytes.size()) return HeaderError(path, "file ends inside the header");
  const std::string header = bytes.substr(header_start, header_len);
  NpyHeader out;
  out.data_offset = header_start + header_len;
  std::string fortran, shape;
  if (!FindValue(header, "descr", &out.descr)) return HeaderError(path, "no 'descr' in " + header);
  if (!FindValue(header, "fortran_order", &fortran)) return HeaderError(path, "no 'fortran_order' in " + header);
  if (!FindValue(header, "shape", &shape)) return HeaderError(path, "no 'shape' in " + header);
  if (fortran == "True") {
    return InvalidArgumentError(".npy file " + Quote(path) +
                                " is in Fortran (column-major) order; expected C order: save "
                                "numpy.ascontiguousarray(a) instead");
  }
  if (fortran != "False") return HeaderError(path, "fortran_order is " + fortran);
  std::istringstream dims(shape);
  for (std::string item; std::getline(dims, item, ',');) {
    const size_t b = item.find_first_not_of(" L");
    if (b == std::string::npos) continue;  // the trailing comma of (N,)
    try {
      size_t used = 0;
      const long long v = std::stoll(item.substr(b), &used);
      if (v < 0) throw std::invalid_argument("negative");
      out.shape.push_back(v);
    } catch (const std::exception&) {
      return HeaderError(path, "shape (" + shape + ")");
    }
  }
  return out;
}

Status CheckSize(const std::string& path, const NpyHeader& h, size_t have, size_t element_size) {
  size_t count = 1;
  for (int64_t s : h.shape) count *= static_cast<size_t>(s);
  const size_t need = count * element_size;
  if (have < need) {
    return InvalidArgumentError(".npy file " + Quote(path) + " is truncated: its shape needs " + std::to_string(need) +
                                " data bytes, the file has " + std::to_string(have));
  }
  if (have > need) {
    return InvalidArgumentError(".npy file " + Quote(path) + " has " + std::to_string(have - need) +
                                " bytes after the data its header declares");
  }
  return OkStatus();
}

}  // namespace

StatusOr<at::Tensor> ReadNpyFile(const std::string& path) {
  auto bytes = ReadWholeFile(path, ".npy file");
  if (!bytes.ok()) return bytes.status();
  auto header = ParseHeader(path, *bytes);
  if (!header.ok()) return header.status();
  const std::string& d = header->descr;
  at::ScalarType dtype;
  if (d == "<f4") dtype = at::kFloat;
  else if (d == "<f8") dtype = at::kDouble;
  else if (d == "|u1" || d == "<u1") dtype = at::kByte;
  else if (d == "<i4") dtype = at::kInt;
  else if (d == "<i8") dtype = at::kLong;
  else if (d == "|b1") dtype = at::kBool;
  else {
    const bool big_endian = !d.empty() && d[0] == '>';
    return InvalidArgumentError(".npy file " + Quote(path) + " has dtype '" + d + "'" +
                                (big_endian ? " (big-endian)" : "") +
                                "; expected little-endian float32 '<f4', float64 '<f8', uint8 '|u1', int32 '<i4', "
                                "int64 '<i8' or bool '|b1'");
  }
  const size_t have = bytes->size() - header->data_offset;
  DWARP_RETURN_IF_ERROR(CheckSize(path, *header, have, c10::elementSize(dtype)));
  at::Tensor out = at::empty(header->shape, dtype);
  if (have > 0) std::memcpy(out.data_ptr(), bytes->data() + header->data_offset, have);
  return out;
}

StatusOr<std::vector<std::string>> ReadNpyStrings(const std::string& path) {
  auto bytes = ReadWholeFile(path, ".npy file");
  if (!bytes.ok()) return bytes.status();
  auto header = ParseHeader(path, *bytes);
  if (!header.ok()) return header.status();
  const std::string& d = header->descr;
  if (d.size() < 3 || d.compare(0, 2, "<U") != 0) {
    return InvalidArgumentError(".npy file " + Quote(path) + " has dtype '" + d +
                                "'; expected a little-endian unicode string array '<U<n>'");
  }
  if (header->shape.size() != 1) {
    return InvalidArgumentError(".npy file " + Quote(path) + " has " + std::to_string(header->shape.size()) +
                                " dimensions; expected a 1-D string array");
  }
  const size_t width = std::stoul(d.substr(2));
  const size_t have = bytes->size() - header->data_offset;
  DWARP_RETURN_IF_ERROR(CheckSize(path, *header, have, 4 * width));
  std::vector<std::string> out;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes->data() + header->data_offset);
  for (int64_t i = 0; i < header->shape[0]; ++i) {
    std::string s;
    for (size_t c = 0; c < width; ++c) {
      const unsigned char* q = p + (static_cast<size_t>(i) * width + c) * 4;
      const uint32_t cp = q[0] | (uint32_t{q[1]} << 8) | (uint32_t{q[2]} << 16) | (uint32_t{q[3]} << 24);
      if (cp == 0) break;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace dwarp::engine
