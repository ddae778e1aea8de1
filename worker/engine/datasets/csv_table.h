// CSV files with a header row (as pandas.DataFrame.to_csv writes them), held as strings.
//
// RFC 4180 quoting: fields may be double-quoted, with "" for a quote and commas or newlines inside. Line ends
// \n or \r\n; a UTF-8 byte-order mark is skipped; a blank last line is ignored. Every row must have as many
// fields as the header. pandas' unnamed index column (an empty header name) is kept as the column "".
// Thread-safety: immutable after ReadCsvFile.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

class CsvTable {
 public:
  CsvTable(std::string path, std::vector<std::string> header, std::vector<std::vector<std::string>> rows)
      : path_(std::move(path)), header_(std::move(header)), rows_(std::move(rows)) {}

  const std::string& path() const { return path_; }
  const std::vector<std::string>& header() const { return header_; }
  size_t num_rows() const { return rows_.size(); }
  bool HasColumn(const std::string& name) const;
  // The column's values, one per row; InvalidArgument naming the file and the columns it has when absent.
  StatusOr<std::vector<std::string>> Column(const std::string& name) const;

 private:
  std::string path_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// NotFound (no such file), Unavailable (unreadable), InvalidArgument (no header, unterminated quote, a row
// with the wrong number of fields: the message names the line).
StatusOr<CsvTable> ReadCsvFile(const std::string& path);

// "True"/"true"/"1" -> true, "False"/"false"/"0" -> false (pandas writes bool columns as True/False);
// InvalidArgument naming `what` (e.g. "metadata.csv row 3, column 'shared1000'") otherwise.
StatusOr<bool> ParseCsvBool(const std::string& value, const std::string& what);

}  // namespace dwarp::engine
