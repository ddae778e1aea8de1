#include "worker/engine/datasets/netcdf_file.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>

#ifdef DWARP_HAVE_NETCDF
#include <netcdf.h>
#endif

#include "common/quote.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

#ifdef DWARP_HAVE_NETCDF
// libnetcdf (and the HDF5 library under it) keeps global state and is not built thread-safe in Debian.
std::mutex& NetcdfMutex() {
  static std::mutex m;
  return m;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string Latin1ToUtf8(const std::string& in) {
  std::string out;
  for (unsigned char c : in) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::string FormatNumber(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.2e18) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}
#endif

}  // namespace

#ifdef DWARP_HAVE_NETCDF

bool NetcdfAvailable() { return true; }

StatusOr<NetcdfFile> NetcdfFile::Open(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFoundError("netCDF file " + Quote(path) + " does not exist");
  if (!fs::is_regular_file(path, ec)) {
    return InvalidArgumentError("netCDF path " + Quote(path) + " is not a regular file");
  }
  int ncid = -1;
  {
    std::lock_guard<std::mutex> lock(NetcdfMutex());
    const int rc = nc_open(path.c_str(), NC_NOWRITE, &ncid);
    if (rc != NC_NOERR) {
      return InvalidArgumentError("cannot open netCDF file " + Quote(path) + ": " + nc_strerror(rc) +
                                  "; expected a netCDF3 or netCDF4/HDF5 file as xarray writes");
    }
  }
  NetcdfFile file(path, ncid);
  DWARP_RETURN_IF_ERROR(file.ReadMetadata());
  return file;
}

NetcdfFile::NetcdfFile(NetcdfFile&& other) noexcept
    : path_(std::move(other.path_)), ncid_(std::exchange(other.ncid_, -1)), variables_(std::move(other.variables_)) {}

NetcdfFile& NetcdfFile::operator=(NetcdfFile&& other) noexcept {
  if (this != &other) {
    this->~NetcdfFile();
    path_ = std::move(other.path_);
    ncid_ = std::exchange(other.ncid_, -1);
    variables_ = std::move(other.variables_);
  }
  return *this;
}

NetcdfFile::~NetcdfFile() {
  if (ncid_ >= 0) {
    std::lock_guard<std::mutex> lock(NetcdfMutex());
    nc_close(ncid_);
    ncid_ = -1;
  }
}

Status NetcdfFile::ReadMetadata() {
  std::lock_guard<std::mutex> lock(NetcdfMutex());
  auto fail = [&](const std::string& what, int rc) {
    return InvalidArgumentError("netCDF file " + Quote(path_) + ": cannot read " + what + ": " + nc_strerror(rc));
  };
  int nvars = 0;
  if (int rc = nc_inq_nvars(ncid_, &nvars); rc != NC_NOERR) return fail("the variable count", rc);
  std::vector<int> varids(static_cast<size_t>(nvars));
  if (nvars > 0) {
    if (int rc = nc_inq_varids(ncid_, &nvars, varids.data()); rc != NC_NOERR) return fail("the variable ids", rc);
  }
  for (int varid : varids) {
    char name[NC_MAX_NAME + 1] = {0};
    nc_type type = 0;
    int ndims = 0;
    if (int rc = nc_inq_var(ncid_, varid, name, &type, &ndims, nullptr, nullptr); rc != NC_NOERR) {
      return fail("variable " + std::to_string(varid), rc);
    }
    std::vector<int> dimids(static_cast<size_t>(ndims));
    if (int rc = nc_inq_vardimid(ncid_, varid, dimids.data()); rc != NC_NOERR) {
      return fail(Quote(name) + "'s dimensions", rc);
    }
    NetcdfVariable var;
    var.name = name;
    var.nc_type = type;
    for (int dimid : dimids) {
      char dim_name[NC_MAX_NAME + 1] = {0};
      size_t len = 0;
      if (int rc = nc_inq_dim(ncid_, dimid, dim_name, &len); rc != NC_NOERR) {
        return fail(Quote(name) + "'s dimensions", rc);
      }
      var.dims.emplace_back(dim_name);
      var.shape.push_back(static_cast<int64_t>(len));
    }
    variables_.push_back(std::move(var));
  }
  return OkStatus();
}

const NetcdfVariable* NetcdfFile::FindVariable(const std::string& name) const {
  for (const auto& v : variables_) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

std::vector<std::string> NetcdfFile::VariablesOnDimension(const std::string& dim) const {
  std::vector<std::string> out;
  for (const auto& v : variables_) {
    if (v.IsOneDimensional() && v.ValueDims()[0] == dim) out.push_back(v.name);
  }
  return out;
}

StatusOr<std::string> NetcdfFile::TextAttribute(const std::string& variable, const std::string& attribute) const {
  std::lock_guard<std::mutex> lock(NetcdfMutex());
  int varid = NC_GLOBAL;
  if (!variable.empty() && nc_inq_varid(ncid_, variable.c_str(), &varid) != NC_NOERR) {
    return NotFoundError("netCDF file " + Quote(path_) + " has no variable " + Quote(variable));
  }
  nc_type type = 0;
  size_t len = 0;
  if (nc_inq_att(ncid_, varid, attribute.c_str(), &type, &len) != NC_NOERR) {
    return NotFoundError("netCDF variable " + Quote(variable) + " in " + Quote(path_) + " has no attribute " +
                         Quote(attribute));
  }
  if (type == NC_CHAR) {
    std::string value(len, '\0');
    if (int rc = nc_get_att_text(ncid_, varid, attribute.c_str(), value.data()); rc != NC_NOERR) {
      return InvalidArgumentError("cannot read attribute " + Quote(attribute) + " of " + Quote(variable) + " in " +
                                  Quote(path_) + ": " + nc_strerror(rc));
    }
    while (!value.empty() && value.back() == '\0') value.pop_back();
    return value;
  }
  if (type == NC_STRING && len == 1) {
    char* value = nullptr;
    if (int rc = nc_get_att_string(ncid_, varid, attribute.c_str(), &value); rc != NC_NOERR) {
      return InvalidArgumentError("cannot read attribute " + Quote(attribute) + " of " + Quote(variable) + " in " +
                                  Quote(path_) + ": " + nc_strerror(rc));
    }
    std::string out = value != nullptr ? value : "";
    nc_free_string(1, &value);
    return out;
  }
  return InvalidArgumentError("attribute " + Quote(attribute) + " of " + Quote(variable) + " in " + Quote(path_) +
                              " is not text");
}

StatusOr<at::Tensor> NetcdfFile::ReadNumeric(const std::string& variable) const {
  const NetcdfVariable* var = FindVariable(variable);
  if (var == nullptr) return NotFoundError("netCDF file " + Quote(path_) + " has no variable " + Quote(variable));
  at::ScalarType dtype;
  switch (var->nc_type) {
    case NC_FLOAT: dtype = at::kFloat; break;
    case NC_DOUBLE: dtype = at::kDouble; break;
    case NC_BYTE: case NC_UBYTE: case NC_SHORT: case NC_USHORT: case NC_INT: case NC_UINT: case NC_INT64:
      dtype = at::kLong;
      break;
    default:
      return InvalidArgumentError("netCDF variable " + Quote(variable) + " in " + Quote(path_) +
                                  " is not numeric (netCDF type " + std::to_string(var->nc_type) + ")");
  }
  at::Tensor out = at::empty(var->shape, dtype);
  {
    std::lock_guard<std::mutex> lock(NetcdfMutex());
    int varid = -1;
    int rc = nc_inq_varid(ncid_, variable.c_str(), &varid);
    if (rc == NC_NOERR) {
      if (dtype == at::kFloat) rc = nc_get_var_float(ncid_, varid, out.data_ptr<float>());
      else if (dtype == at::kDouble) rc = nc_get_var_double(ncid_, varid, out.data_ptr<double>());
      else rc = nc_get_var_longlong(ncid_, varid, reinterpret_cast<long long*>(out.data_ptr<int64_t>()));
    }
    if (rc != NC_NOERR) {
      return InvalidArgumentError("cannot read netCDF variable " + Quote(variable) + " from " + Quote(path_) + ": " +
                                  nc_strerror(rc));
    }
    // Attributes that change the values, as xarray's mask_and_scale decoding.
    if (at::isFloatingType(dtype)) {
      for (const char* fill_name : {"_FillValue", "missing_value"}) {
        nc_type att_type = 0;
        size_t len = 0;
        if (nc_inq_att(ncid_, varid, fill_name, &att_type, &len) == NC_NOERR && len == 1 && att_type != NC_CHAR &&
            att_type != NC_STRING) {
          double fill = 0;
          if (nc_get_att_double(ncid_, varid, fill_name, &fill) == NC_NOERR && !std::isnan(fill)) {
            out.masked_fill_(out == fill, std::numeric_limits<double>::quiet_NaN());
          }
        }
      }
    }
    double scale = 1.0, offset = 0.0;
    const bool has_scale = nc_get_att_double(ncid_, varid, "scale_factor", &scale) == NC_NOERR;
    const bool has_offset = nc_get_att_double(ncid_, varid, "add_offset", &offset) == NC_NOERR;
    if (has_scale || has_offset) out = out.to(at::kDouble).mul_(scale).add_(offset);
  }
  return out;
}

StatusOr<std::vector<std::string>> NetcdfFile::ReadStrings(const std::string& variable) const {
  const NetcdfVariable* var = FindVariable(variable);
  if (var == nullptr) return NotFoundError("netCDF file " + Quote(path_) + " has no variable " + Quote(variable));
  const bool is_char = var->IsCharArray();
  if (!var->IsOneDimensional()) {
    return InvalidArgumentError("netCDF variable " + Quote(variable) + " in " + Quote(path_) + " has dimensions (" +
                                Join(var->dims) + "); expected one dimension" +
                                (is_char ? " plus the string length" : ""));
  }
  bool latin1 = false;
  if (is_char) {
    auto encoding = TextAttribute(variable, "_Encoding");
    if (encoding.ok()) {
      std::string e = *encoding;
      std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
      e.erase(std::remove_if(e.begin(), e.end(), [](char c) { return c == '-' || c == '_'; }), e.end());
      latin1 = e == "latin1" || e == "iso88591";
      if (!latin1 && e != "utf8" && e != "ascii") {
        return InvalidArgumentError("netCDF variable " + Quote(variable) + " in " + Quote(path_) +
                                    " has _Encoding " + Quote(*encoding) + "; expected utf-8, ascii or latin-1");
      }
    }
  }
  const auto n = static_cast<size_t>(var->shape[0]);
  std::vector<std::string> out;
  out.reserve(n);
  if (var->nc_type == NC_STRING || is_char) {
    std::lock_guard<std::mutex> lock(NetcdfMutex());
    int varid = -1;
    int rc = nc_inq_varid(ncid_, variable.c_str(), &varid);
    if (rc == NC_NOERR && var->nc_type == NC_STRING) {
      std::vector<char*> values(n, nullptr);
      if (n > 0) rc = nc_get_var_string(ncid_, varid, values.data());
      if (rc == NC_NOERR) {
        for (char* s : values) out.emplace_back(s != nullptr ? s : "");
        if (n > 0) nc_free_string(n, values.data());
      }
    } else if (rc == NC_NOERR) {
      const auto width = static_cast<size_t>(var->shape[1]);
      std::string chars(n * width, '\0');
      if (!chars.empty()) rc = nc_get_var_text(ncid_, varid, chars.data());
      if (rc == NC_NOERR) {
        for (size_t i = 0; i < n; ++i) {
          std::string s = chars.substr(i * width, width);
          while (!s.empty() && s.back() == '\0') s.pop_back();  // as numpy's fixed-width bytes
          out.push_back(latin1 ? Latin1ToUtf8(s) : std::move(s));
        }
      }
    }
    if (rc != NC_NOERR) {
      return InvalidArgumentError("cannot read netCDF variable " + Quote(variable) + " from " + Quote(path_) + ": " +
                                  nc_strerror(rc));
    }
    return out;
  }
  auto numbers = ReadNumeric(variable);
  if (!numbers.ok()) return numbers.status();
  const at::Tensor values = numbers->to(at::kDouble).contiguous();
  const double* p = values.data_ptr<double>();
  for (size_t i = 0; i < n; ++i) {
    out.push_back(numbers->scalar_type() == at::kLong ? std::to_string(numbers->data_ptr<int64_t>()[i])
                                                     : FormatNumber(p[i]));
  }
  return out;
}

#else  // !DWARP_HAVE_NETCDF

bool NetcdfAvailable() { return false; }

StatusOr<NetcdfFile> NetcdfFile::Open(const std::string& path) {
  return UnavailableError("cannot read netCDF file " + Quote(path) +
                          ": dwarp was built without libnetcdf (install libnetcdf-dev and rebuild)");
}
NetcdfFile::NetcdfFile(NetcdfFile&& other) noexcept = default;
NetcdfFile& NetcdfFile::operator=(NetcdfFile&& other) noexcept = default;
NetcdfFile::~NetcdfFile() = default;
Status NetcdfFile::ReadMetadata() { return OkStatus(); }
const NetcdfVariable* NetcdfFile::FindVariable(const std::string&) const { return nullptr; }
std::vector<std::string> NetcdfFile::VariablesOnDimension(const std::string&) const { return {}; }
StatusOr<std::string> NetcdfFile::TextAttribute(const std::string&, const std::string&) const {
  return UnavailableError("built without libnetcdf");
}
StatusOr<at::Tensor> NetcdfFile::ReadNumeric(const std::string&) const {
  return UnavailableError("built without libnetcdf");
}
StatusOr<std::vector<std::string>> NetcdfFile::ReadStrings(const std::string&) const {
  return UnavailableError("built without libnetcdf");
}

#endif  // DWARP_HAVE_NETCDF

StatusOr<std::string> FindDataArrayVariable(const NetcdfFile& file) {
  const std::string unnamed = "__xarray_dataarray_variable__";  // xarray's name for an unnamed DataArray
  if (file.FindVariable(unnamed) != nullptr) return unnamed;
  std::set<std::string> coordinates;
  auto add_listed = [&](const std::string& variable) {  // "" = the file's own attribute
    auto listed = file.TextAttribute(variable, "coordinates");
    if (!listed.ok()) return;
    std::istringstream words(*listed);
    for (std::string w; words >> w;) coordinates.insert(w);
  };
  add_listed("");
  for (const auto& v : file.variables()) {
    if (v.IsOneDimensional() && v.ValueDims()[0] == v.name) coordinates.insert(v.name);  // dimension coordinate
    add_listed(v.name);
  }
  std::vector<std::string> candidates;
  for (const auto& v : file.variables()) {
    if (coordinates.count(v.name) == 0) candidates.push_back(v.name);
  }
  if (candidates.size() == 1) return candidates[0];
  std::string names;
  for (const auto& c : candidates) names += (names.empty() ? "" : ", ") + Quote(c);
  return InvalidArgumentError("netCDF file " + Quote(file.path()) + " holds " + std::to_string(candidates.size()) +
                              " data variables" + (names.empty() ? "" : " (" + names + ")") +
                              "; expected exactly one, as xarray's DataArray.to_netcdf writes");
}

}  // namespace dwarp::engine
