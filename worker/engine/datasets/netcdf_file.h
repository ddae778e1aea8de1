// A small reader for the netCDF files xarray writes (DataArray.to_netcdf, BrainIO assemblies), over libnetcdf's
// C API: the root group's dimensions and variables, numeric variables as tensors, string coordinates.
//
// What xarray writes (checked against python3-xarray 2023.01 + netCDF4 1.6 in Debian 12): a DataArray becomes
// one data variable (named after the array, or `__xarray_dataarray_variable__` when it has no name) whose
// `coordinates` attribute lists its non-dimension coordinates; a dimension coordinate is a 1-D variable named
// like its dimension; str coordinates are variable-length NC_STRING variables, bytes coordinates (and str ones
// written with a char encoding, `encoding={'dtype': 'S1'}`, or in a netCDF3 format) are NC_CHAR arrays with an
// extra trailing string-length dimension (`string<N>`, or encoding['char_dim_name']) and, for str, the
// attribute `_Encoding` = "utf-8"; floats carry `_FillValue` = NaN; packed variables carry scale_factor /
// add_offset; bools are NC_BYTE 0/1 with the attribute dtype = "bool".
//
// Strings are read as xarray decodes them: every NC_CHAR variable is an array of strings over all its
// dimensions but the last (xarray collapses the last dimension of any char variable, whatever its name);
// trailing NULs are removed; `_Encoding` utf-8 (or none: bytes) is kept as UTF-8, latin-1 / iso-8859-1 are
// converted to UTF-8, any other encoding is refused naming it.
//
// libnetcdf is not thread-safe: every call into it is serialised by one process-wide mutex, so files may be
// opened and read from several threads. A NetcdfFile itself is move-only; its methods are const and may be
// called concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

// True when dwarp was built with libnetcdf; otherwise NetcdfFile::Open returns Unavailable.
bool NetcdfAvailable();

struct NetcdfVariable {
  std::string name;
  int nc_type = 0;                 // NC_FLOAT, NC_STRING, ... (netcdf.h)
  std::vector<std::string> dims;   // dimension names, outermost first
  std::vector<int64_t> shape;      // one size per dimension

  static constexpr int kNcChar = 2;  // NC_CHAR in netcdf.h
  // Strings stored as characters: the last dimension is the string length.
  bool IsCharArray() const { return nc_type == kNcChar && !dims.empty(); }
  // The dimensions of the values: `dims` less a char array's string-length dimension.
  std::vector<std::string> ValueDims() const {
    return IsCharArray() ? std::vector<std::string>(dims.begin(), dims.end() - 1) : dims;
  }
  // One value per entry of one dimension (a 1-D variable, or a char array of 1-D strings): a coordinate.
  bool IsOneDimensional() const { return ValueDims().size() == 1; }
};

class NetcdfFile {
 public:
  // Errors: NotFound (no such file), InvalidArgument (not a netCDF/HDF5 file, with libnetcdf's reason),
  // Unavailable (built without libnetcdf).
  static StatusOr<NetcdfFile> Open(const std::string& path);

  NetcdfFile(NetcdfFile&& other) noexcept;
  NetcdfFile& operator=(NetcdfFile&& other) noexcept;
  NetcdfFile(const NetcdfFile&) = delete;
  NetcdfFile& operator=(const NetcdfFile&) = delete;
  ~NetcdfFile();

  const std::string& path() const { return path_; }
  const std::vector<NetcdfVariable>& variables() const { return variables_; }
  // nullptr when the root group has no variable of that name.
  const NetcdfVariable* FindVariable(const std::string& name) const;
  // Names of the one-dimensional variables (IsOneDimensional) over dimension `dim` (its coordinates, in file
  // order).
  std::vector<std::string> VariablesOnDimension(const std::string& dim) const;

  // A text attribute of a variable; NotFound when absent, InvalidArgument when not text.
  StatusOr<std::string> TextAttribute(const std::string& variable, const std::string& attribute) const;

  // A numeric variable as a CPU tensor of its shape: float32 or float64 for floating data (values equal to
  // `_FillValue` or `missing_value` become NaN), int64 for every integer type, and float64 when the variable
  // is packed (scale_factor / add_offset applied, as xarray decodes it). InvalidArgument for text variables.
  StatusOr<at::Tensor> ReadNumeric(const std::string& variable) const;

  // A one-dimensional variable as strings: NC_STRING, NC_CHAR [n, string_length] (decoded as above), or
  // numbers (integers printed without a decimal point, e.g. stimulus ids "2950"). InvalidArgument for other
  // shapes and for an unsupported `_Encoding`.
  StatusOr<std::vector<std::string>> ReadStrings(const std::string& variable) const;

 private:
  NetcdfFile(std::string path, int ncid) : path_(std::move(path)), ncid_(ncid) {}
  Status ReadMetadata();

  std::string path_;
  int ncid_ = -1;
  std::vector<NetcdfVariable> variables_;
};

// The data variable of a DataArray written by xarray: `__xarray_dataarray_variable__` when present, else the
// one variable that is not a coordinate. Coordinates are the dimension coordinates (one-dimensional variables
// named like their dimension, char arrays included) and every name listed in a variable's or the file's
// `coordinates` attribute. InvalidArgument listing the candidates when there are none or several.
StatusOr<std::string> FindDataArrayVariable(const NetcdfFile& file);

}  // namespace dwarp::engine
